# SPDX-License-Identifier: MIT
# embed.cmake — turns a file into a C array at build time, so the binary carries its web
# page and needs no files beside it. Uses CMake alone (no xxd), so any build image works.
#   cmake -DINPUT=page.html -DOUTPUT=page_html.c -DSYMBOL=page_html -P embed.cmake
# Defines: const unsigned char SYMBOL[] (NUL-terminated) and const size_t SYMBOL_len.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# A line break every 16 bytes keeps the generated file readable for debuggers and diffs.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}"
  "/* Generated from ${INPUT} by embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ${SYMBOL}[] = {\n    ${bytes}0x00};\n"
  "const size_t ${SYMBOL}_len = ${size};\n")

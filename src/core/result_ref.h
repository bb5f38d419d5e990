/* SPDX-License-Identifier: MIT */
/*
 * result_ref.h — the form of a reference to a result persisted in local storage, which the
 * worker writes, the client reads back and the server's retention deletes:
 * "local://" + <storage path> + "/" + <run id> + ".json".
 */
#ifndef ERRAND_CORE_RESULT_REF_H
#define ERRAND_CORE_RESULT_REF_H

#define RESULT_REF_SCHEME "local://"
#define RESULT_FILE_SUFFIX ".json"

#endif

/* Internal to httpc (httpc.c and httpc_text.c): text helpers that see request secrets. */
#ifndef CV_CORE_HTTPC_TEXT_H
#define CV_CORE_HTTPC_TEXT_H

#include <curl/curl.h>

/** "host:port" of url (the scheme's default port filled in), or "(unparsable URL)". Heap string,
 * caller frees. Never fails. */
char *httpc__url_peer(const char *url);

/** Heap copy of txt in which the userinfo, query and fragment of url, each header value of hdrs
 * ("Name: value" lines) and every registered secret (cv_secret_register) are replaced by "***".
 * Values shorter than 3 bytes are left alone. Caller frees. Never fails. */
char *httpc__scrub(const char *txt, const char *url, const struct curl_slist *hdrs);

#endif

// curl_api: libcurl loaded at first use (dlopen), for common/net/http.cpp only.
//
// Why: linking libcurl makes every process pay the dynamic loader for libcurl
// and the ~30 libraries it pulls in (nghttp2, libssh2, ldap, krb5, ...), about
// 8 ms of CPU per transport run, although a delivery with a cached token never
// makes an HTTP request. So libcurl is loaded only when one is made.
//
// Contract:
// - curl_api() loads "libcurl.so.4" (RTLD_NOW | RTLD_LOCAL) on its first call,
//   resolves the curl_* functions below and runs curl_global_init(DEFAULT)
//   once; later calls return the same table. The library is never unloaded.
// - Failure (library missing, a symbol missing, curl_global_init failing)
//   throws o365::Error(temporary), e.g. "cannot load libcurl.so.4: <dlerror>";
//   the failure is remembered and every later call throws the same error.
// - Types and constants still come from <curl/curl.h> (libcurl4-openssl-dev);
//   the function types are taken from its declarations (decltype), so they
//   cannot drift from the header. libcurl.so.4's ABI is stable.
// Thread-safe: the one-time load runs under std::call_once; the table is
// immutable afterwards.
#pragma once

#include <curl/curl.h>

namespace o365 {

struct CurlApi {
    decltype(&::curl_global_init) global_init;
    decltype(&::curl_easy_init) easy_init;
    decltype(&::curl_easy_cleanup) easy_cleanup;
    decltype(&::curl_easy_setopt) easy_setopt;  // variadic, as declared
    decltype(&::curl_easy_getinfo) easy_getinfo;
    decltype(&::curl_easy_perform) easy_perform;
    decltype(&::curl_easy_strerror) easy_strerror;
    decltype(&::curl_easy_escape) easy_escape;
    decltype(&::curl_free) free;
    decltype(&::curl_slist_append) slist_append;
    decltype(&::curl_slist_free_all) slist_free_all;
    decltype(&::curl_url) url;
    decltype(&::curl_url_cleanup) url_cleanup;
    decltype(&::curl_url_set) url_set;
    decltype(&::curl_url_get) url_get;
    decltype(&::curl_getdate) getdate;
};

// The loaded table (see the contract above).
const CurlApi& curl_api();

}  // namespace o365

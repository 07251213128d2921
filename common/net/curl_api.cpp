#include "curl_api.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "error.hpp"

namespace o365 {

namespace {

constexpr const char* kLibrary = "libcurl.so.4";

struct Loaded {
    CurlApi api{};
    std::string error;  // empty: loaded
};

// Resolves `name` into `fn`; false (and the cause in `error`) when missing.
template <typename Fn>
bool resolve(void* lib, const char* name, Fn& fn, std::string& error) {
    dlerror();  // clear a stale error
    void* sym = dlsym(lib, name);
    if (!sym) {
        const char* e = dlerror();
        error = std::string("cannot load ") + kLibrary + ": " +
                (e ? e : std::string("symbol ") + name + " is null");
        return false;
    }
    // POSIX guarantees that a data pointer from dlsym converts to a function pointer.
    fn = reinterpret_cast<Fn>(sym);
    return true;
}

void load(Loaded& out) {
    void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char* e = dlerror();
        out.error = std::string("cannot load ") + kLibrary + ": " + (e ? e : "unknown error");
        return;
    }
    CurlApi& a = out.api;
    std::string& err = out.error;
    bool ok = resolve(lib, "curl_global_init", a.global_init, err) &&
              resolve(lib, "curl_easy_init", a.easy_init, err) &&
              resolve(lib, "curl_easy_cleanup", a.easy_cleanup, err) &&
              resolve(lib, "curl_easy_setopt", a.easy_setopt, err) &&
              resolve(lib, "curl_easy_getinfo", a.easy_getinfo, err) &&
              resolve(lib, "curl_easy_perform", a.easy_perform, err) &&
              resolve(lib, "curl_easy_strerror", a.easy_strerror, err) &&
              resolve(lib, "curl_easy_escape", a.easy_escape, err) &&
              resolve(lib, "curl_free", a.free, err) &&
              resolve(lib, "curl_slist_append", a.slist_append, err) &&
              resolve(lib, "curl_slist_free_all", a.slist_free_all, err) &&
              resolve(lib, "curl_url", a.url, err) &&
              resolve(lib, "curl_url_cleanup", a.url_cleanup, err) &&
              resolve(lib, "curl_url_set", a.url_set, err) &&
              resolve(lib, "curl_url_get", a.url_get, err) &&
              resolve(lib, "curl_getdate", a.getdate, err);
    if (!ok) return;  // the library stays loaded: harmless, and dlclose could run its destructors
    CURLcode rc = a.global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) err = std::string("cannot initialise libcurl: ") + a.easy_strerror(rc);
}

}  // namespace

const CurlApi& curl_api() {
    static std::once_flag once;
    static Loaded loaded;
    std::call_once(once, [] { load(loaded); });
    if (!loaded.error.empty()) throw Error(ErrorClass::temporary, loaded.error);
    return loaded.api;
}

}  // namespace o365

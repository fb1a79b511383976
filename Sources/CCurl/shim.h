#include <curl/curl.h>

// libcurl's curl_easy_setopt / curl_easy_getinfo are variadic and cannot be called from Swift.
// These non-variadic wrappers fix the argument type per call site; nothing else lives here.

static inline CURLcode lora_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }

static inline CURLcode lora_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode lora_curl_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode lora_curl_setopt_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode lora_curl_setopt_off_t(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode lora_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

/// For CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
typedef size_t (*lora_curl_data_callback)(char *data, size_t size, size_t count, void *user);
static inline CURLcode lora_curl_setopt_data_callback(CURL *h, CURLoption o, lora_curl_data_callback f) {
    return curl_easy_setopt(h, o, f);
}

/// For CURLOPT_XFERINFOFUNCTION.
typedef int (*lora_curl_xferinfo_callback)(void *user, curl_off_t dltotal, curl_off_t dlnow,
                                           curl_off_t ultotal, curl_off_t ulnow);
static inline CURLcode lora_curl_setopt_xferinfo_callback(CURL *h, lora_curl_xferinfo_callback f) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f);
}

static inline CURLcode lora_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode lora_curl_getinfo_off_t(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode lora_curl_getinfo_str(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }

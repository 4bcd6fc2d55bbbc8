/*
 * no_resume.c: LD_PRELOAD shim that makes wrk (or any client of the system libssl) do a full
 * TLS handshake on every connection, and counts the handshakes it sees.
 *
 * Why: wrk keeps one SSL object per connection. On reconnect (e.g. with "Connection: close") it
 * calls SSL_shutdown() and SSL_clear(); SSL_clear() keeps the SSL's session (for TLS 1.3 the
 * last ticket the server sent), so the next SSL_connect() offers it and the server resumes.
 * This shim interposes SSL_clear(): it calls the real one, then SSL_set_session(s, NULL), so the
 * next handshake has nothing to offer. (Interposing SSL_set_session() instead would do nothing:
 * wrk never calls it.)
 *
 * It also interposes SSL_connect() to count completed client handshakes, split by
 * SSL_session_reused(), and writes the counts at exit to the file named by NO_RESUME_STATS:
 *     full=<n> resumed=<n> clears=<n> dropped=<n>
 * The benchmark harness (bench/proxy.py) reads this file after every wrk run and checks it.
 *
 * Environment:
 *     NO_RESUME_MODE=count   only count; do not drop sessions (the resumed-handshake test)
 *     NO_RESUME_MODE=drop    (default) drop the session after every SSL_clear()
 *     NO_RESUME_STATS=PATH   where to write the counts at exit (nothing is written without it)
 *
 * Every OpenSSL function is looked up with dlsym(), so the shim has no link-time dependency on
 * libssl and is harmless in a process that does not use it. Build:
 *     gcc -O2 -shared -fPIC -o no_resume.so no_resume.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

typedef int (*ssl_fn)(SSL *);
typedef int (*set_session_fn)(SSL *, SSL_SESSION *);
typedef int (*reused_fn)(const SSL *);

static unsigned long full_count, resumed_count, clear_count, dropped_count;
static int drop_sessions = 1;

static void *next_symbol(const char *name) {
    void *symbol = dlsym(RTLD_NEXT, name);
    if (symbol == NULL) {
        fprintf(stderr, "no_resume: cannot find %s: %s\n", name, dlerror());
        abort();
    }
    return symbol;
}

__attribute__((constructor)) static void no_resume_init(void) {
    const char *mode = getenv("NO_RESUME_MODE");
    drop_sessions = !(mode != NULL && strcmp(mode, "count") == 0);
}

int SSL_clear(SSL *s) {
    static ssl_fn real_clear;
    static set_session_fn set_session;
    if (real_clear == NULL) {
        real_clear = (ssl_fn)next_symbol("SSL_clear");
    }
    int ok = real_clear(s);
    __atomic_add_fetch(&clear_count, 1, __ATOMIC_RELAXED);
    if (ok == 1 && drop_sessions) {
        if (set_session == NULL) {
            set_session = (set_session_fn)next_symbol("SSL_set_session");
        }
        if (set_session(s, NULL) == 1) {
            __atomic_add_fetch(&dropped_count, 1, __ATOMIC_RELAXED);
        }
    }
    return ok;
}

int SSL_connect(SSL *s) {
    static ssl_fn real_connect;
    static reused_fn session_reused;
    if (real_connect == NULL) {
        real_connect = (ssl_fn)next_symbol("SSL_connect");
        session_reused = (reused_fn)next_symbol("SSL_session_reused");
    }
    int result = real_connect(s);
    if (result == 1) {
        if (session_reused(s)) {
            __atomic_add_fetch(&resumed_count, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_add_fetch(&full_count, 1, __ATOMIC_RELAXED);
        }
    }
    return result;
}

__attribute__((destructor)) static void no_resume_report(void) {
    const char *path = getenv("NO_RESUME_STATS");
    if (path == NULL || *path == '\0') {
        return;
    }
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return;
    }
    fprintf(out, "full=%lu resumed=%lu clears=%lu dropped=%lu\n",
            __atomic_load_n(&full_count, __ATOMIC_RELAXED),
            __atomic_load_n(&resumed_count, __ATOMIC_RELAXED),
            __atomic_load_n(&clear_count, __ATOMIC_RELAXED),
            __atomic_load_n(&dropped_count, __ATOMIC_RELAXED));
    fclose(out);
}

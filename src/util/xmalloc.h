/* Allocation wrappers that abort on failure, so callers carry no NULL checks. */
#ifndef ROLLOUT_UTIL_XMALLOC_H
#define ROLLOUT_UTIL_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows *p (an array of *cap elements of elsize bytes) to hold at least need elements. */
void xgrow(void **p, size_t *cap, size_t need, size_t elsize);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrites n bytes with zeros in a way the compiler may not elide (secrets). */
void xwipe(void *p, size_t n);

#endif

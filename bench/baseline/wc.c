/*
 * wc.c — the yardstick for Sluice's `wordcount`: a plain, single-pass C word count.
 *
 *   cc -O2 -pthread -o bench/bin/wc bench/baseline/wc.c
 *   wc [-t THREADS] [-o OUT | -q] [-v] FILE
 *
 * Tokens are exactly Sluice's: maximal runs of bytes that are not ASCII whitespace
 * (space, \t, \n, \r, \v, \f). Every other byte, including NUL and non-UTF-8 bytes, is part
 * of a token. The file is mmap'ed; with -t N it is cut into N ranges at line boundaries, each
 * thread counts its range into its own open-addressing hash table, and the tables are merged
 * into the largest one. Two tricks keep it close to memory speed on Zipf text with ~10^6
 * distinct tokens: short tokens live inside their 32-byte slot (one cache miss per lookup),
 * and slots are prefetched a batch of tokens ahead. Tables use transparent huge pages when the
 * kernel allows it (madvise).
 *
 * -o OUT writes `token<TAB>count` lines (hash order, unsorted) to OUT; -q prints only the
 * number of distinct tokens. Without either, the lines go to standard output. -v also prints
 * `tokens N distinct M` (all tokens, distinct tokens) to standard error.
 * Exit status: 0 on success, 1 on I/O or memory errors, 64 on a bad command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The table: open addressing with linear probing, load factor at most 1/2, 32-byte slots.
 * A token of up to 12 bytes is stored in its slot (zero-padded), so looking it up touches one
 * cache line; a longer one is copied into an arena and the slot holds a pointer to it. On the
 * generated Zipf text most distinct tokens are rare, and each rare token costs a cache miss per
 * dependent memory access; keeping it to one is what makes this fast. */
#define INLINE_MAX 12

typedef struct {
    uint64_t hash; /* 0: empty slot (a real hash of 0 is stored as 1) */
    uint64_t count;
    uint32_t len;
    uint8_t key[INLINE_MAX]; /* the token, zero-padded; or (len > 12) a pointer at key+4 */
} slot_t;

typedef struct {
    slot_t *slots;
    size_t cap; /* power of two */
    size_t used;
    uint8_t *arena; /* current arena block, for long tokens */
    size_t arena_left;
} table_t;

static uint8_t is_space[256];

static void die(const char *what) {
    fprintf(stderr, "wc: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) die("out of memory");
    return p;
}

/* A fast 64-bit hash, 8 bytes at a time (multiply-rotate mixing, murmur-style finalizer). */
static inline uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ (w * 0x87C37B91114253D5ull));
        h = ((h << 31) | (h >> 33)) * 0x4CF5AD432745937Full;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ (w * 0x87C37B91114253D5ull));
        h = ((h << 31) | (h >> 33)) * 0x4CF5AD432745937Full;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

/* Zeroed memory for the big tables, on transparent huge pages where the kernel allows it
 * (with 4 KiB pages, random probes into a table of many MiB miss the TLB on nearly every token). */
static void *big_alloc(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("out of memory");
#ifdef MADV_HUGEPAGE
    if (size >= (2u << 20)) madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

static void big_free(void *p, size_t size) { munmap(p, size); }

static void table_init(table_t *t, size_t cap) {
    t->cap = cap;
    t->used = 0;
    t->slots = big_alloc(cap * sizeof(slot_t));
    t->arena = NULL;
    t->arena_left = 0;
}

static void table_grow(table_t *t) {
    size_t ncap = t->cap * 2, mask = ncap - 1;
    slot_t *ns = big_alloc(ncap * sizeof(slot_t));
    for (size_t i = 0; i < t->cap; i++) {
        slot_t *s = &t->slots[i];
        if (!s->hash) continue;
        size_t j = s->hash & mask;
        while (ns[j].hash) j = (j + 1) & mask;
        ns[j] = *s;
    }
    big_free(t->slots, t->cap * sizeof(slot_t));
    t->slots = ns;
    t->cap = ncap;
}

static const uint8_t *arena_copy(table_t *t, const uint8_t *key, size_t len) {
    if (len > t->arena_left) {
        size_t block = len > (4u << 20) ? len : (4u << 20);
        t->arena = big_alloc(block); /* blocks are never freed: the process exits */
        t->arena_left = block;
    }
    uint8_t *p = t->arena;
    memcpy(p, key, len);
    t->arena += len;
    t->arena_left -= len;
    return p;
}

static inline const uint8_t *slot_key(const slot_t *s) {
    if (s->len <= INLINE_MAX) return s->key;
    const uint8_t *p;
    memcpy(&p, s->key + 4, sizeof p);
    return p;
}

/* Adds `count` to the token key[0..len) whose hash_bytes() is h. */
static inline void table_add(table_t *t, const uint8_t *key, uint32_t len, uint64_t h, uint64_t count) {
    if (h == 0) h = 1;
    uint8_t padded[INLINE_MAX] = {0};
    if (len <= INLINE_MAX) memcpy(padded, key, len);
    size_t mask = t->cap - 1, i = h & mask;
    for (;;) {
        slot_t *s = &t->slots[i];
        if (!s->hash) break;
        if (s->hash == h && s->len == len) {
            int same = len <= INLINE_MAX ? memcmp(s->key, padded, INLINE_MAX) == 0
                                         : memcmp(slot_key(s), key, len) == 0;
            if (same) {
                s->count += count;
                return;
            }
        }
        i = (i + 1) & mask;
    }
    slot_t *s = &t->slots[i];
    s->hash = h;
    s->count = count;
    s->len = len;
    if (len <= INLINE_MAX) {
        memcpy(s->key, padded, INLINE_MAX);
    } else {
        const uint8_t *p = arena_copy(t, key, len);
        memcpy(s->key + 4, &p, sizeof p);
    }
    if (++t->used * 2 > t->cap) table_grow(t);
}

typedef struct {
    const uint8_t *begin, *end;
    table_t table;
} job_t;

/* Tokens are handled in batches: the batch's hashes are computed and their slots prefetched
 * before any is inserted, so the cache misses of a batch overlap instead of queueing. */
#define BATCH 16

static void *count_range(void *arg) {
    job_t *job = arg;
    table_t *t = &job->table;
    table_init(t, 1 << 16);
    const uint8_t *p = job->begin, *end = job->end;
    const uint8_t *starts[BATCH];
    uint32_t lens[BATCH];
    uint64_t hashes[BATCH];
    for (;;) {
        int n = 0;
        while (n < BATCH) {
            while (p < end && is_space[*p]) p++;
            if (p == end) break;
            const uint8_t *start = p;
            while (p < end && !is_space[*p]) p++;
            size_t len = (size_t)(p - start);
            if (len > UINT32_MAX) {
                fprintf(stderr, "wc: token longer than 4 GiB\n");
                exit(1);
            }
            uint64_t h = hash_bytes(start, len);
            __builtin_prefetch(&t->slots[h & (t->cap - 1)]);
            starts[n] = start;
            lens[n] = (uint32_t)len;
            hashes[n] = h;
            n++;
        }
        for (int k = 0; k < n; k++) table_add(t, starts[k], lens[k], hashes[k], 1);
        if (n < BATCH) break;
    }
    return NULL;
}

/* Buffered output of `token<TAB>count` lines. */
typedef struct {
    int fd;
    char *buf;
    size_t n, cap;
} out_t;

static void out_flush(out_t *o) {
    size_t done = 0;
    while (done < o->n) {
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        done += (size_t)w;
    }
    o->n = 0;
}

static void out_bytes(out_t *o, const void *p, size_t n) {
    if (n > o->cap - o->n) {
        out_flush(o);
        if (n > o->cap) { /* a huge token: write it directly */
            o->n = n;
            char *saved = o->buf;
            o->buf = (char *)p;
            out_flush(o);
            o->buf = saved;
            return;
        }
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
}

static void out_line(out_t *o, const slot_t *e) {
    char num[24];
    int k = 0;
    uint64_t v = e->count;
    char tmp[24];
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    int m = 0;
    num[m++] = '\t';
    while (k) num[m++] = tmp[--k];
    num[m++] = '\n';
    out_bytes(o, slot_key(e), e->len);
    out_bytes(o, num, (size_t)m);
}

static void usage(void) {
    fprintf(stderr, "usage: wc [-t THREADS] [-o OUT | -q] [-v] FILE\n");
    exit(64);
}

int main(int argc, char **argv) {
    int threads = 1, quiet = 0, verbose = 0;
    const char *outPath = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "t:o:qvh")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'o': outPath = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || threads < 1 || threads > 256) usage();
    const char *path = argv[optind];

    is_space[' '] = is_space['\t'] = is_space['\n'] = is_space['\r'] = is_space['\v'] = is_space['\f'] = 1;

    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) != 0) die(path);
    size_t size = (size_t)st.st_size;
    const uint8_t *data = NULL;
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) die(path);
        madvise(m, size, MADV_SEQUENTIAL);
        data = m;
    }

    /* Cut into `threads` ranges, each ending just after a newline (or at the end). */
    job_t *jobs = xcalloc((size_t)threads, sizeof(job_t));
    size_t pos = 0;
    for (int i = 0; i < threads; i++) {
        size_t end = (i == threads - 1) ? size : (size / (size_t)threads) * (size_t)(i + 1);
        if (end < pos) end = pos;
        while (end > 0 && end < size && data[end - 1] != '\n') end++;
        jobs[i].begin = data + pos;
        jobs[i].end = data + end;
        pos = end;
    }
    if (threads == 1) {
        count_range(&jobs[0]);
    } else {
        pthread_t *tids = xcalloc((size_t)threads, sizeof(pthread_t));
        for (int i = 0; i < threads; i++) {
            errno = pthread_create(&tids[i], NULL, count_range, &jobs[i]);
            if (errno) die("pthread_create");
        }
        for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);
        free(tids);
    }

    /* Merge into the largest table. */
    int big = 0;
    for (int i = 1; i < threads; i++)
        if (jobs[i].table.used > jobs[big].table.used) big = i;
    table_t *t = &jobs[big].table;
    for (int i = 0; i < threads; i++) {
        if (i == big) continue;
        table_t *s = &jobs[i].table;
        for (size_t j = 0; j < s->cap; j++) {
            slot_t *e = &s->slots[j];
            if (e->hash) table_add(t, slot_key(e), e->len, e->hash, e->count);
        }
        big_free(s->slots, s->cap * sizeof(slot_t));
    }

    if (verbose) {
        uint64_t total = 0;
        for (size_t j = 0; j < t->cap; j++) total += t->slots[j].hash ? t->slots[j].count : 0;
        fprintf(stderr, "tokens %llu distinct %zu\n", (unsigned long long)total, t->used);
    }
    if (quiet) {
        printf("%zu\n", t->used);
    } else {
        out_t o = {.fd = 1, .cap = 1 << 20};
        if (outPath) {
            o.fd = open(outPath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (o.fd < 0) die(outPath);
        }
        o.buf = malloc(o.cap);
        if (!o.buf) die("out of memory");
        for (size_t j = 0; j < t->cap; j++)
            if (t->slots[j].hash) out_line(&o, &t->slots[j]);
        out_flush(&o);
        if (outPath && close(o.fd) != 0) die(outPath);
    }
    return 0;
}

#define _GNU_SOURCE
#include "CSluiceSys.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

int sluice_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int sluice_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int sluice_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 int child_stdin, int child_stdout, int child_stderr) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    posix_spawn_file_actions_adddup2(&actions, child_stdin, 0);
    posix_spawn_file_actions_adddup2(&actions, child_stdout, 1);
    if (child_stderr >= 0) posix_spawn_file_actions_adddup2(&actions, child_stderr, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attr);
    /* The coordinator ignores SIGPIPE; the worker starts with default dispositions. */
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    rc = posix_spawnp(pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int sluice_wait_status(int status, int *code) {
    if (WIFEXITED(status)) { *code = WEXITSTATUS(status); return 1; }
    if (WIFSIGNALED(status)) { *code = WTERMSIG(status); return 2; }
    return 0;
}

void sluice_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

static pid_t stall_parent;

void sluice_wait_for_coordinator_to_go(void) {
    /* Only async-signal-safe calls (it runs in a signal handler too). The coordinator is gone
       when our parent changes (a local worker) or our stdin is closed (through srun). */
    pid_t parent = stall_parent ? stall_parent : getppid();
    struct pollfd in = {0, POLLIN, 0};
    while (getppid() == parent) {
        if (poll(&in, 1, 1000) > 0 && (in.revents & (POLLHUP | POLLERR | POLLNVAL))) break;
    }
    _exit(1);
}

static void stall_handler(int sig) {
    (void)sig;
    sluice_wait_for_coordinator_to_go();
}

int sluice_stall_thread(pthread_t thread) {
    stall_parent = getppid();
    struct sigaction action;
    action.sa_handler = stall_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR2, &action, NULL) != 0) return -1;
    return pthread_kill(thread, SIGUSR2);
}

int sluice_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

void sluice_start_writeback(int fd, int64_t offset, int64_t count) {
#ifdef __linux__
    (void)sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)count;
#endif
}

static volatile sig_atomic_t caught_signal;
static struct sigaction previous[3];
static const int watched[3] = {SIGINT, SIGTERM, SIGHUP};

static void remember_signal(int sig) { caught_signal = sig; }

/* Runs in one process (a program running several jobs at once) share the handlers: the
   first installs them, the last restores the previous ones. */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static int watchers;

void sluice_watch_signals(void) {
    pthread_mutex_lock(&watch_lock);
    if (watchers++ == 0) {
        caught_signal = 0;
        struct sigaction action;
        action.sa_handler = remember_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0; /* no SA_RESTART: poll(2) returns EINTR at once */
        for (int i = 0; i < 3; i++) sigaction(watched[i], &action, &previous[i]);
    }
    pthread_mutex_unlock(&watch_lock);
    /* A parent may have started us with them blocked (test runners do): they must arrive. */
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++) sigaddset(&set, watched[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void sluice_unwatch_signals(void) {
    pthread_mutex_lock(&watch_lock);
    if (--watchers == 0) {
        for (int i = 0; i < 3; i++) sigaction(watched[i], &previous[i], NULL);
    }
    pthread_mutex_unlock(&watch_lock);
}

int sluice_caught_signal(void) { return caught_signal; }

// CRC-32 (zlib's polynomial) by slicing-by-8: eight table lookups per 8 bytes. For the short
// buffers of event-log records it is 3-4x faster than zlib's, whose setup per call dominates.
static uint32_t crc_tables[8][256];

__attribute__((constructor)) static void sluice_crc32_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_tables[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++)
            crc_tables[s][i] = (crc_tables[s - 1][i] >> 8) ^ crc_tables[0][crc_tables[s - 1][i] & 0xff];
}

uint32_t sluice_crc32_short(const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    uint32_t crc = 0xFFFFFFFFu;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= crc;
        crc = crc_tables[7][w & 0xff] ^ crc_tables[6][(w >> 8) & 0xff] ^ crc_tables[5][(w >> 16) & 0xff]
            ^ crc_tables[4][(w >> 24) & 0xff] ^ crc_tables[3][(w >> 32) & 0xff] ^ crc_tables[2][(w >> 40) & 0xff]
            ^ crc_tables[1][(w >> 48) & 0xff] ^ crc_tables[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ crc_tables[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

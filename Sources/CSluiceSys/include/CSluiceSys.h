#ifndef CSLUICESYS_H
#define CSLUICESYS_H
#include <sys/types.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/// Creates a pipe whose ends are close-on-exec. Returns 0 or -1 (errno set).
int sluice_pipe_cloexec(int fds[2]);
/// Grows a pipe's kernel buffer (F_SETPIPE_SZ); returns the new size or -1.
int sluice_set_pipe_size(int fd, int size);
/// Spawns `path` with `argv`/`envp`, wiring the child's stdin/stdout/stderr to the given fds
/// (stderr inherited when `child_stderr` is -1) and closing every other descriptor. Returns 0
/// or an errno value.
int sluice_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 int child_stdin, int child_stdout, int child_stderr);
/// Decodes a wait status: 1 if the child exited normally (code in *code), 2 if killed by a
/// signal (signal in *code), 0 otherwise.
int sluice_wait_status(int status, int *code);
/// Asks the CPU to start loading the cache line at `p` (a hash-table slot about to be probed).
static inline void sluice_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }
/// Ignores SIGPIPE so that writing to a dead worker returns EPIPE instead of killing us.
void sluice_ignore_sigpipe(void);
/// Freezes `thread` where it is (the `stall` fault): a signal handler on that thread sleeps
/// until the process's parent goes away, then exits; the process and its other threads run on.
int sluice_stall_thread(pthread_t thread);
/// Blocks until the coordinator is gone (the parent process changed, or stdin was closed),
/// then exits: what a stalled or hung worker does, never outliving its coordinator.
void sluice_wait_for_coordinator_to_go(void);
/// Renames `from` to `to` unless `to` exists (renameat2 RENAME_NOREPLACE): 0, or -1 with errno
/// (EEXIST when `to` exists; EINVAL where the filesystem cannot do it).
int sluice_rename_noreplace(const char *from, const char *to);
/// Starts writing `count` bytes of `fd` from `offset` to disk without waiting for them
/// (sync_file_range SYNC_FILE_RANGE_WRITE on Linux; nothing elsewhere). A hint: errors ignored.
void sluice_start_writeback(int fd, int64_t offset, int64_t count);
/// Catches SIGINT, SIGTERM and SIGHUP into a flag (interrupting blocking calls) until
/// `sluice_unwatch_signals` restores the previous handlers.
void sluice_watch_signals(void);
void sluice_unwatch_signals(void);
/// The last signal caught since `sluice_watch_signals`, or 0.
int sluice_caught_signal(void);
/// CRC-32 with zlib's polynomial (`crc32(0, bytes, n)`), faster than zlib's for short buffers.
uint32_t sluice_crc32_short(const void *bytes, size_t n);
#endif

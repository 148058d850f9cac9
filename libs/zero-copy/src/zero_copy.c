/*
 * Zero-copy byte movers for clear-text FTP data connections (Linux): sendfile(2) file → socket, splice(2)
 * socket → pipe → file and socket → pipe → socket. Plain Node-API (node_api.h), so the binary survives Node upgrades.
 *
 * Each move runs on a thread of its own (small stack), never on the event loop and never on libuv's thread pool,
 * whose four threads the file system needs: a move waiting for a slow client would otherwise hold one of them.
 *
 * File descriptors: the caller's descriptors stay the caller's. A move works on dup(2)s of them, made synchronously
 * when it starts, and closes its dups before it reports its end, so
 *   - the caller closing its socket or file meanwhile never makes the move write into a descriptor number that has
 *     been reused for something else, and
 *   - once the end is reported, closing the caller's descriptor really closes the connection.
 * Socket descriptors are non-blocking (libuv makes them so): EAGAIN is waited out with poll(2), which also watches
 * the move's eventfd; cancel() sets a flag and writes that eventfd, so a waiting move returns at once, and a busy one
 * after its current chunk (CHUNK_BYTES for sendfile, one pipe's worth for splice).
 *
 * Events reach JavaScript through a thread-safe function: progress (total bytes so far; at most one per
 * progress interval, only when bytes moved) and one end (total bytes, why it ended, errno). Byte counts are exact:
 * sendfile counts what the socket accepted; a splice counts what reached its output, and a splice into a file that
 * is cancelled first writes what it already took from the socket (so bytes read = bytes stored).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

/* One sendfile call moves at most this much: bounds how long a cancel waits when the file is read from disk. */
#define CHUNK_BYTES (8 * 1024 * 1024)
/* Pipe size asked for (the default pipe-max-size); a refusal (pipe-user-pages-soft reached) keeps the default 64 KiB. */
#define PIPE_BYTES (1024 * 1024)
#define THREAD_STACK (256 * 1024)
/* Where splice into a file is not supported: the size of the bounce buffer. */
#define BUFFER_BYTES (256 * 1024)

typedef enum { MOVE_SENDFILE, MOVE_SPLICE } move_kind;

typedef enum { END_DONE, END_EOF, END_CANCELLED, END_ERROR } end_reason;

typedef struct move {
  atomic_int refs; /* the cancel function (until garbage-collected) and the thread */
  atomic_bool cancelled;
  pthread_mutex_t lock; /* guards cancel_fd: cancel() may come after the thread closed it */
  int cancel_fd;   /* eventfd; closed by the thread when it ends (-1 then), so no descriptor waits for the GC */
  int in_fd;       /* dups, closed by the thread before it reports its end */
  int out_fd;
  move_kind kind;
  int out_is_file; /* splice: the output is a regular file written at out_off */
  int64_t in_off;  /* sendfile: file position */
  int64_t out_off; /* splice into a file: file position */
  int64_t length;  /* sendfile: bytes to send */
  int progress_ms;
  char *buffer;     /* splice into a file that refuses splice: bounce buffer (read + pwrite) */
  napi_threadsafe_function tsfn;
} move;

typedef struct event {
  int end;     /* 0 = progress, 1 = end */
  int64_t bytes;
  end_reason reason;
  int err;
} event;

static void move_unref(move *m) {
  if (atomic_fetch_sub(&m->refs, 1) == 1) {
    if (m->cancel_fd >= 0) close(m->cancel_fd);
    pthread_mutex_destroy(&m->lock);
    free(m->buffer);
    free(m);
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void post(move *m, int end, int64_t bytes, end_reason reason, int err) {
  event *e = malloc(sizeof *e);
  if (!e) return;
  e->end = end;
  e->bytes = bytes;
  e->reason = reason;
  e->err = err;
  if (napi_call_threadsafe_function(m->tsfn, e, napi_tsfn_blocking) != napi_ok) free(e);
}

typedef struct progress {
  int64_t reported;
  int64_t at;
} progress;

static void maybe_progress(move *m, progress *p, int64_t bytes) {
  if (bytes == p->reported) return;
  int64_t now = now_ms();
  if (now - p->at < m->progress_ms) return;
  p->reported = bytes;
  p->at = now;
  post(m, 0, bytes, END_DONE, 0);
}

/* Waits until fd is ready for `events` or the move is cancelled; the timeout lets progress be reported. */
static void wait_ready(move *m, int fd, short events, int fd2, short events2) {
  struct pollfd fds[3];
  nfds_t n = 0;
  fds[n].fd = m->cancel_fd;
  fds[n].events = POLLIN;
  n++;
  if (fd >= 0) {
    fds[n].fd = fd;
    fds[n].events = events;
    n++;
  }
  if (fd2 >= 0) {
    fds[n].fd = fd2;
    fds[n].events = events2;
    n++;
  }
  poll(fds, n, m->progress_ms);
}

static end_reason run_sendfile(move *m, int64_t *bytes, int *err) {
  progress p = {0, now_ms()};
  off_t off = (off_t)m->in_off;
  int64_t remaining = m->length;
  while (remaining > 0) {
    if (atomic_load(&m->cancelled)) return END_CANCELLED;
    size_t chunk = remaining > CHUNK_BYTES ? CHUNK_BYTES : (size_t)remaining;
    ssize_t n = sendfile(m->out_fd, m->in_fd, &off, chunk);
    if (n > 0) {
      *bytes += n;
      remaining -= n;
      maybe_progress(m, &p, *bytes);
      continue;
    }
    if (n == 0) return END_EOF; /* the file is shorter than when it was opened */
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      *err = errno;
      return END_ERROR;
    }
    wait_ready(m, m->out_fd, POLLOUT, -1, 0);
    maybe_progress(m, &p, *bytes);
  }
  return END_DONE;
}

/*
 * Moves up to `len` bytes from the pipe into the output file at *off. splice(2) into a file works on the usual local
 * file systems; where it does not (EINVAL), the bytes go through a buffer (read + pwrite) for the rest of the move,
 * still off the event loop, since they already left the socket and cannot be handed back to a stream.
 */
static ssize_t pipe_to_file(move *m, int pipe_out, size_t len, loff_t *off) {
  if (!m->buffer) {
    ssize_t n = splice(pipe_out, NULL, m->out_fd, off, len, SPLICE_F_MOVE);
    if (n >= 0 || (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)) return n;
    m->buffer = malloc(BUFFER_BYTES);
    if (!m->buffer) {
      errno = ENOMEM;
      return -1;
    }
  }
  ssize_t got = read(pipe_out, m->buffer, len < BUFFER_BYTES ? len : BUFFER_BYTES);
  if (got <= 0) return got;
  ssize_t done = 0;
  while (done < got) {
    ssize_t w = pwrite(m->out_fd, m->buffer + done, (size_t)(got - done), *off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      /* The bytes read from the pipe and not written are lost: the move fails, counting only what was stored. */
      if (w == 0) errno = EIO;
      return done > 0 ? done : -1;
    }
    done += w;
    *off += w;
  }
  return done;
}

/* Moves what is left in the pipe into the output file (after a cancel): those bytes already left the socket. */
static void drain_pipe_to_file(move *m, int pipe_out, size_t *in_pipe, int64_t *bytes, loff_t *off) {
  while (*in_pipe > 0) {
    ssize_t n = pipe_to_file(m, pipe_out, *in_pipe, off);
    if (n > 0) {
      *in_pipe -= (size_t)n;
      *bytes += n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
}

static end_reason run_splice(move *m, int64_t *bytes, int *err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    *err = errno;
    return END_ERROR;
  }
  int size = fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
  if (size < 0) size = fcntl(p[1], F_GETPIPE_SZ);
  if (size <= 0) size = 65536;
  progress pr = {0, now_ms()};
  loff_t off = (loff_t)m->out_off;
  size_t in_pipe = 0;
  int eof = 0;
  end_reason reason = END_DONE;
  for (;;) {
    if (atomic_load(&m->cancelled)) {
      reason = END_CANCELLED;
      break;
    }
    int moved = 0;
    if (!eof && in_pipe < (size_t)size) {
      ssize_t n = splice(m->in_fd, NULL, p[1], NULL, (size_t)size - in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe += (size_t)n;
        moved = 1;
      } else if (n == 0) {
        eof = 1;
      } else if (errno != EAGAIN && errno != EINTR) {
        *err = errno;
        reason = END_ERROR;
        break;
      }
    }
    int write_blocked = 0;
    if (in_pipe > 0) {
      ssize_t n = m->out_is_file ? pipe_to_file(m, p[0], in_pipe, &off)
                                 : splice(p[0], NULL, m->out_fd, NULL, in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe -= (size_t)n;
        *bytes += n;
        moved = 1;
      } else if (n < 0 && errno == EAGAIN) {
        write_blocked = 1;
      } else if (n < 0 && errno == EINTR) {
        /* again */
      } else {
        *err = n == 0 ? EIO : errno;
        reason = END_ERROR;
        break;
      }
    }
    if (eof && in_pipe == 0) {
      reason = END_EOF;
      break;
    }
    maybe_progress(m, &pr, *bytes);
    if (moved) continue;
    /* Nothing moved. Bytes in the pipe: wait for the output (a full pipe can also refuse reads, so not for the
     * input, or a readable socket would spin). An empty pipe: wait for the input. */
    if (in_pipe > 0 && write_blocked) wait_ready(m, m->out_fd, POLLOUT, -1, 0);
    else if (in_pipe == 0) wait_ready(m, m->in_fd, POLLIN, -1, 0);
    maybe_progress(m, &pr, *bytes);
  }
  if (reason == END_CANCELLED && m->out_is_file) drain_pipe_to_file(m, p[0], &in_pipe, bytes, &off);
  m->out_off = off;
  close(p[0]);
  close(p[1]);
  return reason;
}

static void *run(void *arg) {
  move *m = arg;
  int64_t bytes = 0;
  int err = 0;
  end_reason reason = m->kind == MOVE_SENDFILE ? run_sendfile(m, &bytes, &err) : run_splice(m, &bytes, &err);
  /* A move that finished while a cancel came in still reports how it really ended. */
  close(m->in_fd);
  close(m->out_fd);
  pthread_mutex_lock(&m->lock);
  close(m->cancel_fd);
  m->cancel_fd = -1;
  pthread_mutex_unlock(&m->lock);
  post(m, 1, bytes, reason, err);
  napi_release_threadsafe_function(m->tsfn, napi_tsfn_release);
  move_unref(m);
  return NULL;
}

/* ---- JavaScript side ---- */

static const char *reason_name(end_reason r) {
  switch (r) {
    case END_DONE: return "done";
    case END_EOF: return "eof";
    case END_CANCELLED: return "cancelled";
    default: return "error";
  }
}

/* callback(kind: 'progress' | 'end', bytes, reason, errno) */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  event *e = data;
  if (env != NULL && callback != NULL) {
    napi_value argv[4], global;
    napi_create_string_utf8(env, e->end ? "end" : "progress", NAPI_AUTO_LENGTH, &argv[0]);
    napi_create_double(env, (double)e->bytes, &argv[1]);
    napi_create_string_utf8(env, reason_name(e->reason), NAPI_AUTO_LENGTH, &argv[2]);
    napi_create_int32(env, e->err, &argv[3]);
    napi_get_global(env, &global);
    napi_call_function(env, global, callback, 4, argv, NULL);
  }
  free(e);
}

static napi_value cancel_move(napi_env env, napi_callback_info info) {
  move *m;
  napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&m);
  if (!atomic_exchange(&m->cancelled, 1)) {
    pthread_mutex_lock(&m->lock);
    if (m->cancel_fd >= 0) {
      uint64_t one = 1;
      ssize_t ignored = write(m->cancel_fd, &one, sizeof one);
      (void)ignored;
    }
    pthread_mutex_unlock(&m->lock);
  }
  return NULL;
}

static void finalize_cancel(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  move_unref(data);
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static int64_t int64_arg(napi_env env, napi_value v) {
  int64_t out = -1;
  if (napi_get_value_int64(env, v, &out) != napi_ok) return -1;
  return out;
}

/* Starts a move; returns its cancel function. Throws when it cannot start (the caller then uses streams). */
static napi_value start(napi_env env, move_kind kind, int in_fd, int out_fd, int64_t in_off, int64_t out_off, int out_is_file,
                        int64_t length, int progress_ms, napi_value callback) {
  move *m = calloc(1, sizeof *m);
  if (!m) return throw_errno(env, "zero-copy", ENOMEM);
  m->kind = kind;
  m->in_off = in_off;
  m->out_off = out_off;
  m->out_is_file = out_is_file;
  m->length = length;
  m->progress_ms = progress_ms > 0 ? progress_ms : 250;
  m->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  m->in_fd = m->cancel_fd < 0 ? -1 : fcntl(in_fd, F_DUPFD_CLOEXEC, 0);
  m->out_fd = m->in_fd < 0 ? -1 : fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
  if (m->out_fd < 0) {
    int err = errno;
    if (m->in_fd >= 0) close(m->in_fd);
    if (m->cancel_fd >= 0) close(m->cancel_fd);
    free(m);
    return throw_errno(env, "zero-copy: dup", err);
  }
  atomic_init(&m->refs, 2);
  atomic_init(&m->cancelled, 0);
  pthread_mutex_init(&m->lock, NULL);

  napi_value name, cancel;
  napi_create_string_utf8(env, "zero-copy move", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, callback, NULL, name, 0, 1, NULL, NULL, NULL, call_js, &m->tsfn) != napi_ok) {
    close(m->in_fd);
    close(m->out_fd);
    close(m->cancel_fd);
    free(m);
    napi_throw_error(env, NULL, "zero-copy: cannot create the event channel");
    return NULL;
  }
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel_move, m, &cancel);
  napi_add_finalizer(env, cancel, m, finalize_cancel, NULL, NULL);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, run, m);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    close(m->in_fd);
    close(m->out_fd);
    close(m->cancel_fd);
    m->cancel_fd = -1;
    napi_release_threadsafe_function(m->tsfn, napi_tsfn_abort);
    move_unref(m); /* the thread's reference; the cancel function's goes with it */
    return throw_errno(env, "zero-copy: thread", rc);
  }
  return cancel;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "zero-copy: missing arguments");
    return 0;
  }
  napi_valuetype t;
  napi_typeof(env, argv[want - 1], &t);
  if (t != napi_function) {
    napi_throw_type_error(env, NULL, "zero-copy: the last argument must be a function");
    return 0;
  }
  return 1;
}

/* sendFile(fileFd, socketFd, position, length, progressMs, callback) → cancel */
static napi_value send_file(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv)) return NULL;
  int64_t file = int64_arg(env, argv[0]), sock = int64_arg(env, argv[1]), pos = int64_arg(env, argv[2]),
          len = int64_arg(env, argv[3]), ms = int64_arg(env, argv[4]);
  if (file < 0 || sock < 0 || pos < 0 || len < 0) {
    napi_throw_range_error(env, NULL, "zero-copy: bad descriptor, position or length");
    return NULL;
  }
  return start(env, MOVE_SENDFILE, (int)file, (int)sock, pos, 0, 0, len, (int)ms, argv[5]);
}

/* splice(fromFd, toFd, toPosition (-1: a socket), progressMs, callback) → cancel */
static napi_value splice_fds(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int64_t from = int64_arg(env, argv[0]), to = int64_arg(env, argv[1]), pos = int64_arg(env, argv[2]), ms = int64_arg(env, argv[3]);
  if (from < 0 || to < 0) {
    napi_throw_range_error(env, NULL, "zero-copy: bad descriptor");
    return NULL;
  }
  return start(env, MOVE_SPLICE, (int)from, (int)to, 0, pos < 0 ? 0 : pos, pos >= 0, 0, (int)ms, argv[4]);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendFile", NAPI_AUTO_LENGTH, send_file, NULL, &fn);
  napi_set_named_property(env, exports, "sendFile", fn);
  napi_create_function(env, "splice", NAPI_AUTO_LENGTH, splice_fds, NULL, &fn);
  napi_set_named_property(env, exports, "splice", fn);
  return exports;
}

// Reads another process's memory with process_vm_readv(2), many ranges per system call: the
// introspector's way into QEMU's guest RAM when it has to read a few thousand small pieces (page
// table entries, task_structs, argument pages) in a few milliseconds. Node has no binding for it;
// fs.readSync on /proc/<pid>/mem costs one system call per piece.
//
// Read-only by construction: this module has no way to write (no process_vm_writev, no open).
// Built by hack/build-native.sh (host) and by the Dockerfile (image) with N-API, so it loads in any
// Node version with N-API 8.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <limits.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define BATCH 1024 /* UIO_MAXIOV */
/* Batches of at least this many ranges are split between two threads (a thread costs ~30 µs). */
#ifndef SPLIT_AT
#define SPLIT_AT 512
#endif

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int typed(napi_env env, napi_value value, napi_typedarray_type want, size_t *length, void **data) {
  bool is;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, data, &buffer, &offset) != napi_ok) return 0;
  return type == want;
}

// Reads ranges [first, end): the index of the first range not read in full (end when every one
// was), or -errno when range `first` failed.
static int32_t read_span(pid_t pid, const double *addresses, const uint32_t *lengths, const uint32_t *offsets, uint8_t *into, size_t first, size_t end) {
  struct iovec local[BATCH], remote[BATCH];
  size_t i = first;
  int32_t result = (int32_t)end;
  while (i < end) {
    size_t batch = end - i < BATCH ? end - i : BATCH;
    size_t want = 0;
    for (size_t k = 0; k < batch; k++) {
      local[k].iov_base = into + offsets[i + k];
      local[k].iov_len = lengths[i + k];
      remote[k].iov_base = (void *)(uintptr_t)addresses[i + k];
      remote[k].iov_len = lengths[i + k];
      want += lengths[i + k];
    }
    ssize_t got = process_vm_readv(pid, local, batch, remote, batch, 0);
    if (got < 0) {
      result = i == first ? -errno : (int32_t)i;
      break;
    }
    if ((size_t)got == want) {
      i += batch;
      continue;
    }
    // A partial read stops inside or at the end of some range: that range is the first not read.
    size_t k = 0;
    for (size_t done = 0; k < batch && done + lengths[i + k] <= (size_t)got; k++) done += lengths[i + k];
    result = (int32_t)(i + k);
    break;
  }
  return result;
}

struct span_job {
  pid_t pid;
  const double *addresses;
  const uint32_t *lengths, *offsets;
  uint8_t *into;
  size_t first, end;
  int32_t result;
};

static void *span_thread(void *arg) {
  struct span_job *job = arg;
  job->result = read_span(job->pid, job->addresses, job->lengths, job->offsets, job->into, job->first, job->end);
  return NULL;
}

// Large batches are read by two threads, a half each: the cost is per range (the kernel looks up
// and pins QEMU's pages for each), not per byte, and two CPUs halve it. Same answer as read_span:
// a failure in the first half wins; one at the start of the second half is that range's index.
static int32_t read_split(pid_t pid, const double *addresses, const uint32_t *lengths, const uint32_t *offsets, uint8_t *into, size_t first, size_t end) {
  cpu_set_t cpus;
  if (end - first < SPLIT_AT || sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) < 2) return read_span(pid, addresses, lengths, offsets, into, first, end);
  size_t mid = first + (end - first) / 2;
  struct span_job job = {pid, addresses, lengths, offsets, into, mid, end, 0};
  pthread_t thread;
  if (pthread_create(&thread, NULL, span_thread, &job) != 0) return read_span(pid, addresses, lengths, offsets, into, first, end);
  int32_t head = read_span(pid, addresses, lengths, offsets, into, first, mid);
  pthread_join(thread, NULL);
  if (head != (int32_t)mid) return head;
  return job.result < 0 ? (int32_t)mid : job.result;
}

// readRanges(pid, addresses: Float64Array, lengths: Uint32Array, into: Buffer, offsets: Uint32Array,
//            first: number, count: number) → the index of the first range not read in full
//            (first + count when every one was), or -errno when the first range failed.
// Range i is `lengths[i]` bytes at `addresses[i]` in the process, copied to `into[offsets[i]..]`.
static napi_value ReadRanges(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7) return throw_type(env, "readRanges: 7 arguments expected");
  int32_t pid, first, count;
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0) return throw_type(env, "readRanges: pid must be a positive integer");
  size_t n_addresses, n_lengths, n_offsets, into_length;
  double *addresses;
  uint32_t *lengths, *offsets;
  uint8_t *into;
  if (!typed(env, argv[1], napi_float64_array, &n_addresses, (void **)&addresses)) return throw_type(env, "readRanges: addresses must be a Float64Array");
  if (!typed(env, argv[2], napi_uint32_array, &n_lengths, (void **)&lengths)) return throw_type(env, "readRanges: lengths must be a Uint32Array");
  if (napi_get_buffer_info(env, argv[3], (void **)&into, &into_length) != napi_ok) return throw_type(env, "readRanges: into must be a Buffer");
  if (!typed(env, argv[4], napi_uint32_array, &n_offsets, (void **)&offsets)) return throw_type(env, "readRanges: offsets must be a Uint32Array");
  if (napi_get_value_int32(env, argv[5], &first) != napi_ok || napi_get_value_int32(env, argv[6], &count) != napi_ok || first < 0 || count < 0) return throw_type(env, "readRanges: first and count must be integers ≥ 0");
  size_t end = (size_t)first + (size_t)count;
  if (end > n_addresses || end > n_lengths || end > n_offsets) return throw_type(env, "readRanges: first + count exceeds the arrays");
  for (size_t i = first; i < end; i++) {
    if ((size_t)offsets[i] + lengths[i] > into_length) return throw_type(env, "readRanges: a range does not fit in into");
    if (!(addresses[i] >= 0 && addresses[i] <= 9007199254740991.0)) return throw_type(env, "readRanges: an address is not a safe integer");
  }

  int32_t result = read_split(pid, addresses, lengths, offsets, into, first, end);
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "readRanges", NAPI_AUTO_LENGTH, ReadRanges, NULL, &fn);
  napi_set_named_property(env, exports, "readRanges", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

// File I/O Node does not offer (src/backend/native-io.ts):
// - preadv2(2) with RWF_NOWAIT: a read the kernel can serve without blocking (the data is in the
//   page cache) is done on the calling thread; anything else fails at once with EAGAIN, or
//   EOPNOTSUPP where the file system cannot promise it (FUSE, so every gluster mount), and the
//   caller goes to the thread pool. It never waits for I/O, so the event loop cannot hang on it.
// - the address of a buffer's memory modulo an alignment, so that direct I/O can use page-aligned
//   memory.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define MAX_IOVECS 1024

// preadvNowait(fd, buffers, offset): bytes read into the buffers in order (0 at end of file,
// possibly fewer than asked when only part is cached), or -errno.
static napi_value preadv_nowait(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  uint32_t count = 0;
  int64_t offset;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok || count == 0 || count > MAX_IOVECS ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || offset < 0) {
    napi_throw_type_error(env, NULL, "preadvNowait(fd: number, buffers: Buffer[] (1 to 1024), offset: number)");
    return NULL;
  }
  struct iovec iov[MAX_IOVECS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok ||
        napi_get_buffer_info(env, element, &iov[i].iov_base, &iov[i].iov_len) != napi_ok) {
      napi_throw_type_error(env, NULL, "preadvNowait: every element of buffers must be a Buffer");
      return NULL;
    }
  }
  ssize_t n = preadv2(fd, iov, (int)count, offset, RWF_NOWAIT);
  napi_value result;
  napi_create_int64(env, n < 0 ? -(int64_t)errno : (int64_t)n, &result);
  return result;
}

// alignmentSkip(buffer, alignment): bytes from the start of `buffer` to the first address that is
// a multiple of `alignment` (a power of two).
static napi_value alignment_skip(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data;
  size_t length;
  uint32_t alignment;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &alignment) != napi_ok || alignment == 0 || (alignment & (alignment - 1)) != 0) {
    napi_throw_type_error(env, NULL, "alignmentSkip(buffer: Buffer, alignment: power of two)");
    return NULL;
  }
  uintptr_t address = (uintptr_t)data;
  napi_value result;
  napi_create_uint32(env, (uint32_t)((alignment - (address & (alignment - 1))) & (alignment - 1)), &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "preadvNowait", NAPI_AUTO_LENGTH, preadv_nowait, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "preadvNowait", fn) != napi_ok ||
      napi_create_function(env, "alignmentSkip", NAPI_AUTO_LENGTH, alignment_skip, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "alignmentSkip", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}

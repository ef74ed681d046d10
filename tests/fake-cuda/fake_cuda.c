/*
 * fake_cuda.c - a TEST DOUBLE of the NVIDIA driver library (libcuda.so.1).
 *
 * Why it exists: CI has no NVIDIA GPU or driver, so without it kernelhub's
 * CUDA backend (crates/kernelhub-cuda) is tested only as far as "cannot
 * open libcuda.so.1". The tests build this file into libfakecuda.so and
 * point KERNELHUB_CUDA_LIBRARY at it; the backend then runs up to and
 * including its driver calls, and meets on demand what a real driver does
 * only on particular machines: no GPU, an old driver, PTX newer than the
 * driver's JIT, code for another SM.
 *
 * It exports exactly the symbols of the `driver_api!` list in
 * crates/kernelhub-cuda/src/sys.rs, with cuda.h's C signatures. It runs no
 * kernel: "device memory" is malloc'd host memory, and cuLaunchKernel
 * appends one line to FAKE_CUDA_LAUNCH_LOG with the entry, the geometry and
 * every parameter read through kernelParams[i] with the size the PTX
 * declares, which is what shows the parameter block matches the PTX ABI.
 *
 * Like the real driver: every call but cuDriverGetVersion, cuGetErrorName
 * and cuGetErrorString answers CUDA_ERROR_NOT_INITIALIZED until a cuInit
 * succeeds; each GPU has one primary context, usable while retained;
 * memory, stream, module and launch calls need a retained context current
 * on the calling thread (else CUDA_ERROR_INVALID_CONTEXT), and a stream or
 * module works only in the context it was made in (else
 * CUDA_ERROR_INVALID_HANDLE or CUDA_ERROR_INVALID_CONTEXT); copies and
 * frees must stay inside live allocations (else CUDA_ERROR_INVALID_VALUE).
 * Memory is one address space across GPUs, as under unified addressing.
 * A launch may ask for 48 KiB of dynamic shared memory less the module's
 * `.shared` variables, more once raised with cuFuncSetAttribute, up to the
 * SM's per-block opt-in limit (163 KiB for sm_80, 227 KiB for sm_90).
 *
 * Settings, from the environment, read by cuInit:
 *   FAKE_CUDA_DEVICES=N       N GPUs (default 1, at most 8); 0: cuInit fails
 *                             with CUDA_ERROR_NO_DEVICE
 *   FAKE_CUDA_SM=NN           compute capability N.N (default 80: sm_80)
 *   FAKE_CUDA_DRIVER=NNNNN    cuDriverGetVersion (default 12040: CUDA 12.4)
 *   FAKE_CUDA_LAUNCH_LOG=path the launch log (none when unset); a line also
 *                             names the context (`context=N`, N the GPU) and
 *                             the stream (`stream=N`, the Nth one created)
 *   FAKE_CUDA_CALL_LOG=path   one line per context-related call: primary
 *                             context retain and release, cuCtxSetCurrent,
 *                             synchronisation, streams, memory, modules,
 *                             kernel attributes and launches (refused ones
 *                             too), each with its GPU (none when unset)
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_common.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef void *CUstream;
typedef int CUjit_option;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
};

enum {
    CU_JIT_INFO_LOG_BUFFER = 3,
    CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
    CU_JIT_ERROR_LOG_BUFFER = 5,
    CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
};

/* Longest PTX text accepted: a missing NUL terminator shows as "longer". */
#define MAX_PTX_BYTES (64u << 20)

/* ---- settings and state ---- */

#define MAX_DEVICES 8

static int initialized;
static int device_count = 1;
static int sm = 80;
static int driver_version = 12040;

/* A GPU's primary context; its handle is its address. */
struct context {
    int device;
    int refs;
};
static struct context contexts[MAX_DEVICES];
static _Thread_local struct context *current_context;

static void read_settings(void) {
    device_count = env_int("FAKE_CUDA_DEVICES", 1);
    if (device_count < 0)
        device_count = 0;
    if (device_count > MAX_DEVICES)
        device_count = MAX_DEVICES;
    for (int i = 0; i < MAX_DEVICES; i++)
        contexts[i].device = i;
    sm = env_int("FAKE_CUDA_SM", 80);
    driver_version = env_int("FAKE_CUDA_DRIVER", 12040);
}

static int valid_device(CUdevice device) { return device >= 0 && device < device_count; }

/* The most shared memory a block may opt in to on the GPU's SM, as the
 * CUDA programming guide's table of compute capabilities gives it. */
static int shared_per_block_optin(void) {
    switch (sm) {
    case 80:
    case 87:
        return 163 * 1024;
    case 90:
    case 100:
        return 227 * 1024;
    case 75:
        return 64 * 1024;
    case 70:
        return 96 * 1024;
    default:
        return 99 * 1024;
    }
}

/* Dynamic shared memory a launch may ask for before opting in. */
#define DEFAULT_DYNAMIC_SHARED (48 * 1024)

/* The context of handle `handle`; NULL if it is none of the fake's. */
static struct context *context_of(CUcontext handle) {
    for (int i = 0; i < device_count; i++)
        if (handle == &contexts[i])
            return &contexts[i];
    return NULL;
}

/* One line of the call log. */
#define trace(...) log_line("FAKE_CUDA_CALL_LOG", __VA_ARGS__)

#define NEED_INIT()                                                            \
    do {                                                                       \
        if (!initialized)                                                      \
            return CUDA_ERROR_NOT_INITIALIZED;                                 \
    } while (0)

/* Memory, modules and launches work in the current context. */
#define NEED_CONTEXT()                                                         \
    do {                                                                       \
        NEED_INIT();                                                           \
        if (!current_context || current_context->refs <= 0)                    \
            return CUDA_ERROR_INVALID_CONTEXT;                                 \
    } while (0)

/* ---- errors ---- */

static const struct error_entry errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
};

EXPORT CUresult cuGetErrorName(CUresult error, const char **name) {
    if (!name)
        return CUDA_ERROR_INVALID_VALUE;
    const struct error_entry *e = find_error(errors, COUNT_OF(errors), error);
    *name = e ? e->name : "CUDA_ERROR_UNKNOWN";
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char **text) {
    if (!text)
        return CUDA_ERROR_INVALID_VALUE;
    const struct error_entry *e = find_error(errors, COUNT_OF(errors), error);
    *text = e ? e->text : "unknown error";
    return CUDA_SUCCESS;
}

/* ---- driver and device ---- */

EXPORT CUresult cuInit(unsigned int flags) {
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    read_settings();
    initialized = device_count > 0;
    pthread_mutex_unlock(&lock);
    return initialized ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

/* Needs no cuInit, like the real one. */
EXPORT CUresult cuDriverGetVersion(int *version) {
    if (!version)
        return CUDA_ERROR_INVALID_VALUE;
    *version = env_int("FAKE_CUDA_DRIVER", 12040);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *count) {
    NEED_INIT();
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    *count = device_count;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    NEED_INIT();
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(ordinal))
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice device) {
    NEED_INIT();
    if (!valid_device(device))
        return CUDA_ERROR_INVALID_DEVICE;
    if (!name || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", "kernelhub fake GPU");
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice device) {
    NEED_INIT();
    if (!valid_device(device))
        return CUDA_ERROR_INVALID_DEVICE;
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    switch (attribute) {
    case 75: /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
        *value = sm / 10;
        return CUDA_SUCCESS;
    case 76: /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR */
        *value = sm % 10;
        return CUDA_SUCCESS;
    case 5: /* CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X */
        *value = 2147483647;
        return CUDA_SUCCESS;
    case 97: /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
        *value = shared_per_block_optin();
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice device) {
    NEED_INIT();
    if (!valid_device(device))
        return CUDA_ERROR_INVALID_DEVICE;
    if (!bytes)
        return CUDA_ERROR_INVALID_VALUE;
    *bytes = TOTAL_MEMORY;
    return CUDA_SUCCESS;
}

/* ---- contexts and streams ---- */

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *context, CUdevice device) {
    NEED_INIT();
    if (!valid_device(device))
        return CUDA_ERROR_INVALID_DEVICE;
    if (!context)
        return CUDA_ERROR_INVALID_VALUE;
    trace("cuDevicePrimaryCtxRetain %d", device);
    pthread_mutex_lock(&lock);
    contexts[device].refs++;
    pthread_mutex_unlock(&lock);
    *context = &contexts[device];
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
    NEED_INIT();
    if (!valid_device(device))
        return CUDA_ERROR_INVALID_DEVICE;
    trace("cuDevicePrimaryCtxRelease %d", device);
    CUresult status = CUDA_SUCCESS;
    pthread_mutex_lock(&lock);
    if (contexts[device].refs > 0)
        contexts[device].refs--;
    else
        status = CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_unlock(&lock);
    return status;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *context) {
    NEED_INIT();
    if (!context)
        return CUDA_ERROR_INVALID_VALUE;
    *context = current_context;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSynchronize(void) {
    NEED_CONTEXT();
    trace("cuCtxSynchronize context=%d", current_context->device);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext handle) {
    NEED_INIT();
    struct context *context = context_of(handle);
    if (context)
        trace("cuCtxSetCurrent %d", context->device);
    else
        trace("cuCtxSetCurrent %s", handle ? "?" : "none");
    if (handle && (!context || context->refs <= 0))
        return CUDA_ERROR_INVALID_CONTEXT;
    current_context = context;
    return CUDA_SUCCESS;
}

struct stream {
    unsigned int magic;
    struct context *context;
    int id; /* 1, 2, ...: the logs' `stream=` (0: the legacy default stream) */
};
#define STREAM_MAGIC 0x57eea11u
static int streams_made;

static int stream_id(CUstream stream) { return stream ? ((struct stream *)stream)->id : 0; }

/* A stream of the current context (null: the legacy default stream). */
static int stream_ok(CUstream stream) {
    if (!stream)
        return 1;
    const struct stream *s = stream;
    return s->magic == STREAM_MAGIC && s->context == current_context;
}

EXPORT CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
    NEED_CONTEXT();
    if (!stream || flags > 1)
        return CUDA_ERROR_INVALID_VALUE;
    struct stream *s = malloc(sizeof *s);
    if (!s)
        return CUDA_ERROR_OUT_OF_MEMORY;
    s->magic = STREAM_MAGIC;
    s->context = current_context;
    pthread_mutex_lock(&lock);
    s->id = ++streams_made;
    pthread_mutex_unlock(&lock);
    trace("cuStreamCreate context=%d stream=%d", current_context->device, s->id);
    *stream = s;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(CUstream stream) {
    NEED_CONTEXT();
    if (!stream || !stream_ok(stream))
        return CUDA_ERROR_INVALID_HANDLE;
    trace("cuStreamDestroy context=%d stream=%d", current_context->device, stream_id(stream));
    ((struct stream *)stream)->magic = 0;
    /* Kept (leaked), so a second destroy or a use after it is caught. */
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(CUstream stream) {
    NEED_CONTEXT();
    return stream_ok(stream) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* ---- memory: host memory, each allocation recorded (fake_common.h) ---- */

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *address, size_t len) {
    NEED_CONTEXT();
    if (!address || len == 0)
        return CUDA_ERROR_INVALID_VALUE;
    void *memory = allocate(len);
    if (!memory)
        return CUDA_ERROR_OUT_OF_MEMORY;
    trace("cuMemAlloc context=%d", current_context->device);
    *address = (CUdeviceptr)(uintptr_t)memory;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr address) {
    NEED_CONTEXT();
    trace("cuMemFree context=%d", current_context->device);
    return release((uintptr_t)address) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t len,
                                     CUstream stream) {
    NEED_CONTEXT();
    if (!stream_ok(stream))
        return CUDA_ERROR_INVALID_HANDLE;
    void *to = (void *)(uintptr_t)dst;
    return copy_checked(to, src, len, (uintptr_t)dst) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t len,
                                     CUstream stream) {
    NEED_CONTEXT();
    if (!stream_ok(stream))
        return CUDA_ERROR_INVALID_HANDLE;
    const void *from = (const void *)(uintptr_t)src;
    return copy_checked(dst, from, len, (uintptr_t)src) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t len,
                                CUstream stream) {
    NEED_CONTEXT();
    if (!stream_ok(stream))
        return CUDA_ERROR_INVALID_HANDLE;
    return fill_checked((uintptr_t)dst, value, len) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- modules ---- */

/* A PTX parameter type: its name, its size, how the launch log prints it. */
enum print { HEX, UNSIGNED, SIGNED, FLOAT, DOUBLE, BYTES };
static const struct {
    const char *name;
    unsigned size;
    enum print print;
} types[] = {
    {".u64", 8, HEX},      {".s64", 8, SIGNED},    {".b64", 8, HEX},     {".f64", 8, DOUBLE},
    {".u32", 4, UNSIGNED}, {".s32", 4, SIGNED},    {".b32", 4, UNSIGNED}, {".f32", 4, FLOAT},
    {".u16", 2, UNSIGNED}, {".s16", 2, SIGNED},    {".b16", 2, UNSIGNED}, {".f16", 2, HEX},
    {".bf16", 2, HEX},     {".f16x2", 4, HEX},     {".bf16x2", 4, HEX},  {".u8", 1, UNSIGNED},
    {".s8", 1, SIGNED},    {".b8", 1, UNSIGNED},
};

struct param {
    unsigned size;  /* bytes of one element */
    unsigned count; /* elements: > 1 for `.param .b8 name[16]` */
    enum print print;
};

#define FUNCTION_MAGIC 0xf00c7105u
struct module;
struct function {
    unsigned magic;
    struct module *module;
    int static_shared;  /* bytes of `.shared` variables */
    int dynamic_shared; /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    char name[256];
    int nparams; /* -1: not known (a cubin) */
    struct param params[64];
};

struct module {
    struct context *context;
    int loaded;
    int static_shared; /* bytes of the module's `.shared` variables */
    int nfunctions;
    struct function *functions;
};

static struct function *add_function(struct module *m, const char *name) {
    struct function *grown = realloc(m->functions, (size_t)(m->nfunctions + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    m->functions = grown;
    struct function *f = &grown[m->nfunctions++];
    memset(f, 0, sizeof *f);
    f->magic = FUNCTION_MAGIC;
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* PTX tokens: directives and names ([.%$A-Za-z0-9_]+), strings, or one
 * punctuation character; whitespace and comments are skipped. */
struct lexer {
    const char *p;
    int line;
    char token[256];
};

static void skip_blank(struct lexer *lx) {
    for (;;) {
        if (*lx->p == '\n') {
            lx->line++;
            lx->p++;
        } else if (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r') {
            lx->p++;
        } else if (lx->p[0] == '/' && lx->p[1] == '/') {
            while (*lx->p && *lx->p != '\n')
                lx->p++;
        } else if (lx->p[0] == '/' && lx->p[1] == '*') {
            lx->p += 2;
            while (*lx->p && !(lx->p[0] == '*' && lx->p[1] == '/')) {
                lx->line += *lx->p == '\n';
                lx->p++;
            }
            if (*lx->p)
                lx->p += 2;
        } else {
            return;
        }
    }
}

static int word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '$' || c == '%';
}

/* The next token into lx->token; 0 at the end of the text. */
static int next(struct lexer *lx) {
    skip_blank(lx);
    size_t n = 0;
    if (!*lx->p) {
        lx->token[0] = 0;
        return 0;
    }
    if (word_char(*lx->p)) {
        while (word_char(*lx->p)) {
            if (n + 1 < sizeof lx->token)
                lx->token[n++] = *lx->p;
            lx->p++;
        }
    } else if (*lx->p == '"') {
        lx->p++;
        while (*lx->p && *lx->p != '"' && *lx->p != '\n')
            lx->p++;
        if (*lx->p == '"')
            lx->p++;
        lx->token[n++] = '"';
    } else {
        lx->token[n++] = *lx->p++;
    }
    lx->token[n] = 0;
    return 1;
}

static int is(const struct lexer *lx, const char *text) { return strcmp(lx->token, text) == 0; }

/* The CUDA driver (1000 * major + 10 * minor) whose JIT first reads PTX ISA
 * `major.minor`; INT32_MAX for versions newer than this double knows. */
static int driver_for_ptx(int major, int minor) {
    if (major < 7)
        return 0;
    if (major == 7 && minor <= 8)
        return 11000 + 10 * minor;
    if (major == 8 && minor <= 5)
        return 12000 + 10 * minor;
    if (major == 8 && minor <= 8)
        return 12070 + 10 * (minor - 6);
    if (major == 9 && minor <= 1)
        return 13000 + 10 * minor;
    return INT32_MAX;
}

/* The JIT error log, as the options give it; its size option is set to
 * the bytes written, as the driver does. */
struct jit_log {
    char *buffer;
    size_t size;
    void **size_slot;
};

static void log_error(struct jit_log *log, const char *format, ...) {
    if (!log->buffer || log->size == 0)
        return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(log->buffer, log->size, format, args);
    va_end(args);
    size_t written = n < 0 ? 0 : (size_t)n < log->size ? (size_t)n + 1 : log->size;
    if (log->size_slot)
        *log->size_slot = (void *)(uintptr_t)written;
}

static CUresult load_ptx(struct module *m, const char *text, struct jit_log *log) {
    if (strnlen(text, MAX_PTX_BYTES) == MAX_PTX_BYTES)
        return CUDA_ERROR_INVALID_IMAGE; /* no NUL terminator in sight */
    struct lexer lx = {.p = text, .line = 1};
    if (!next(&lx) || !is(&lx, ".version")) {
        log_error(log, "ptxas application ptx input, line %d; fatal   : Missing .version directive",
                  lx.line);
        return CUDA_ERROR_INVALID_PTX;
    }
    int version_line = lx.line, major = 0, minor = 0;
    if (!next(&lx) || sscanf(lx.token, "%d.%d", &major, &minor) != 2) {
        log_error(log, "ptxas application ptx input, line %d; fatal   : Parsing error near '%s'",
                  lx.line, lx.token);
        return CUDA_ERROR_INVALID_PTX;
    }
    if (driver_for_ptx(major, minor) > driver_version) {
        log_error(log, "ptxas application ptx input, line %d; fatal: Unsupported .version %d.%d",
                  version_line, major, minor);
        return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
    }
    while (next(&lx)) {
        if (is(&lx, ".target")) {
            int target = 0;
            if (!next(&lx) || sscanf(lx.token, "sm_%d", &target) != 1) {
                log_error(log, "ptxas application ptx input, line %d; fatal   : Unknown target '%s'",
                          lx.line, lx.token);
                return CUDA_ERROR_INVALID_PTX;
            }
            if (target > sm) {
                log_error(log,
                          "ptxas application ptx input, line %d; fatal   : SM version specified "
                          "by .target is higher than default SM version assumed",
                          lx.line);
                return CUDA_ERROR_NO_BINARY_FOR_GPU;
            }
        } else if (is(&lx, ".shared")) {
            /* `.shared [.align N] .type name[count];`: every kernel of the
             * module is taken to use it (ptxas counts only those that do). */
            unsigned size = 0, count = 0;
            while (next(&lx) && !is(&lx, ";")) {
                for (size_t i = 0; i < COUNT_OF(types); i++)
                    if (is(&lx, types[i].name))
                        size = types[i].size;
                if (is(&lx, "[") && next(&lx))
                    sscanf(lx.token, "%u", &count);
            }
            unsigned long long bytes = (unsigned long long)size * count + (unsigned)m->static_shared;
            m->static_shared = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
        } else if (is(&lx, ".entry")) {
            if (!next(&lx))
                return CUDA_ERROR_INVALID_PTX;
            struct function *f = add_function(m, lx.token);
            if (!f)
                return CUDA_ERROR_OUT_OF_MEMORY;
            if (!next(&lx) || !is(&lx, "("))
                continue; /* no parameter list */
            struct param *p = NULL;
            while (next(&lx) && !is(&lx, ")")) {
                if (is(&lx, ".param")) {
                    if (f->nparams == (int)(sizeof f->params / sizeof f->params[0]))
                        return CUDA_ERROR_INVALID_PTX;
                    p = &f->params[f->nparams++];
                    p->count = 1;
                } else if (p && is(&lx, "[")) {
                    unsigned count = 0;
                    if (next(&lx) && sscanf(lx.token, "%u", &count) == 1 && count > 0)
                        p->count = count;
                    p->print = BYTES;
                } else if (p && p->size == 0) {
                    for (size_t i = 0; i < COUNT_OF(types); i++)
                        if (is(&lx, types[i].name)) {
                            p->size = types[i].size;
                            p->print = types[i].print;
                        }
                }
            }
            for (int i = 0; i < f->nparams; i++)
                if (f->params[i].size == 0) {
                    log_error(log, "ptxas application ptx input: fatal   : Unknown parameter type in '%s'",
                              f->name);
                    return CUDA_ERROR_INVALID_PTX;
                }
        }
    }
    return CUDA_SUCCESS;
}

/* A cubin: 64-bit little-endian ELF. Its SM is e_flags & 0xff up to ELF
 * ABI version 7 (CUDA 12 and older), bits 8-15 from version 8 (CUDA 13);
 * its kernels are the STT_FUNC symbols, with unknown parameters. */
static CUresult load_elf(struct module *m, const unsigned char *elf) {
    if (!elf_is_64_le(elf))
        return CUDA_ERROR_INVALID_IMAGE;
    unsigned flags = (unsigned)read_le(elf + 48, 4);
    unsigned arch = elf[8] >= 8 ? (flags >> 8) & 0xff : flags & 0xff;
    if ((int)arch != sm)
        return CUDA_ERROR_NO_BINARY_FOR_GPU;
    uint64_t shoff;
    unsigned shnum;
    int sections = elf_sections(elf, &shoff, &shnum);
    if (sections <= 0)
        return sections == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_IMAGE;
    for (unsigned s = 0; s < shnum; s++) {
        const unsigned char *sh = elf_section(elf, shoff, s);
        if (elf_section_type(sh) != 2) /* SHT_SYMTAB */
            continue;
        struct elf_symbols table;
        if (!elf_symbols(elf, shoff, shnum, sh, &table))
            return CUDA_ERROR_INVALID_IMAGE;
        for (uint64_t i = 0; i < table.count; i++) {
            if (elf_symbol_type(&table, i) != 2) /* STT_FUNC */
                continue;
            struct function *f = add_function(m, elf_symbol_name(&table, i));
            if (!f)
                return CUDA_ERROR_OUT_OF_MEMORY;
            f->nparams = -1;
        }
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int count,
                                   CUjit_option *options, void **values) {
    NEED_CONTEXT();
    if (!module || !image || (count && (!options || !values)))
        return CUDA_ERROR_INVALID_VALUE;
    struct jit_log log = {0};
    for (unsigned i = 0; i < count; i++) {
        if (options[i] == CU_JIT_ERROR_LOG_BUFFER)
            log.buffer = values[i];
        else if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) {
            log.size = (size_t)(uintptr_t)values[i];
            log.size_slot = &values[i];
        }
    }
    struct module *m = calloc(1, sizeof *m);
    if (!m)
        return CUDA_ERROR_OUT_OF_MEMORY;
    const unsigned char *bytes = image;
    CUresult status;
    if (bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F')
        status = load_elf(m, bytes);
    else
        status = load_ptx(m, image, &log);
    if (status != CUDA_SUCCESS) {
        free(m->functions);
        free(m);
        return status;
    }
    if (m->static_shared > DEFAULT_DYNAMIC_SHARED) {
        log_error(&log, "ptxas error   : Entry function uses too much shared data (0x%x bytes, 0xc000 max)",
                  (unsigned)m->static_shared);
        free(m->functions);
        free(m);
        return CUDA_ERROR_INVALID_PTX;
    }
    for (int i = 0; i < m->nfunctions; i++) {
        struct function *f = &m->functions[i];
        f->module = m;
        f->static_shared = m->static_shared;
        f->dynamic_shared = DEFAULT_DYNAMIC_SHARED - m->static_shared;
    }
    m->context = current_context;
    m->loaded = 1;
    trace("cuModuleLoadDataEx context=%d", current_context->device);
    *module = m;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleUnload(CUmodule module) {
    NEED_CONTEXT();
    struct module *m = module;
    if (!m || !m->loaded)
        return CUDA_ERROR_INVALID_HANDLE;
    if (m->context != current_context)
        return CUDA_ERROR_INVALID_CONTEXT;
    trace("cuModuleUnload context=%d", current_context->device);
    /* Kept (leaked) so a launch of one of its functions is caught. */
    m->loaded = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *function, CUmodule module, const char *name) {
    NEED_CONTEXT();
    struct module *m = module;
    if (!function || !name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!m || !m->loaded)
        return CUDA_ERROR_INVALID_HANDLE;
    if (m->context != current_context)
        return CUDA_ERROR_INVALID_CONTEXT;
    for (int i = 0; i < m->nfunctions; i++)
        if (strcmp(m->functions[i].name, name) == 0) {
            *function = &m->functions[i];
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}

/* The function `function` of a loaded module of the current context, or
 * the status to answer. */
static CUresult usable_function(CUfunction function) {
    struct function *f = function;
    if (!f || f->magic != FUNCTION_MAGIC || !f->module->loaded)
        return CUDA_ERROR_INVALID_HANDLE;
    if (f->module->context != current_context)
        return CUDA_ERROR_INVALID_CONTEXT;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuFuncGetAttribute(int *value, int attribute, CUfunction function) {
    NEED_CONTEXT();
    CUresult status = usable_function(function);
    if (status != CUDA_SUCCESS)
        return status;
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    const struct function *f = function;
    switch (attribute) {
    case 1: /* CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES */
        *value = f->static_shared;
        return CUDA_SUCCESS;
    case 8: /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
        *value = f->dynamic_shared;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

EXPORT CUresult cuFuncSetAttribute(CUfunction function, int attribute, int value) {
    NEED_CONTEXT();
    CUresult status = usable_function(function);
    if (status != CUDA_SUCCESS)
        return status;
    struct function *f = function;
    trace("cuFuncSetAttribute %s %d %d context=%d", f->name, attribute, value,
          current_context->device);
    if (attribute != 8 || value < 0 || value > shared_per_block_optin() - f->static_shared)
        return CUDA_ERROR_INVALID_VALUE;
    f->dynamic_shared = value;
    return CUDA_SUCCESS;
}

/* ---- launches: logged, not run ---- */

/* Appends `value` of parameter `p` to `out`. */
static void print_param(char *out, size_t cap, const struct param *p, const unsigned char *value) {
    size_t n = strlen(out);
    if (p->print == BYTES) {
        n += (size_t)snprintf(out + n, cap - n, "0x");
        for (unsigned i = 0; i < p->size * p->count && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%02x", value[i]);
        return;
    }
    uint64_t bits = read_le(value, p->size);
    switch (p->print) {
    case HEX:
        snprintf(out + n, cap - n, "0x%llx", (unsigned long long)bits);
        break;
    case UNSIGNED:
        snprintf(out + n, cap - n, "%llu", (unsigned long long)bits);
        break;
    case SIGNED: {
        unsigned shift = 64 - 8 * p->size;
        long long v = (long long)(bits << shift) >> shift;
        snprintf(out + n, cap - n, "%lld", v);
        break;
    }
    case FLOAT: {
        float f;
        uint32_t b = (uint32_t)bits;
        memcpy(&f, &b, sizeof f);
        snprintf(out + n, cap - n, "%.9g", (double)f);
        break;
    }
    case DOUBLE: {
        double d;
        memcpy(&d, &bits, sizeof d);
        snprintf(out + n, cap - n, "%.17g", d);
        break;
    }
    case BYTES:
        break;
    }
}

EXPORT CUresult cuLaunchKernel(CUfunction function, unsigned int gx, unsigned int gy,
                               unsigned int gz, unsigned int bx, unsigned int by,
                               unsigned int bz, unsigned int shared, CUstream stream,
                               void **params, void **extra) {
    NEED_CONTEXT();
    CUresult status = usable_function(function);
    if (status != CUDA_SUCCESS)
        return status;
    if (!stream_ok(stream))
        return CUDA_ERROR_INVALID_HANDLE;
    struct function *f = function;
    trace("cuLaunchKernel %s shared=%u context=%d", f->name, shared, current_context->device);
    if (!gx || !gy || !gz || !bx || !by || !bz || (unsigned long long)bx * by * bz > 1024 ||
        by > 1024 || bz > 64 || gy > 65535 || gz > 65535 || shared > (unsigned)f->dynamic_shared)
        return CUDA_ERROR_INVALID_VALUE;
    if ((params && extra) || (f->nparams > 0 && !params))
        return CUDA_ERROR_INVALID_VALUE;
    const char *path = getenv("FAKE_CUDA_LAUNCH_LOG");
    if (!path || !*path)
        return CUDA_SUCCESS;
    char line[8192];
    snprintf(line, sizeof line,
             "%s grid=%u,%u,%u block=%u,%u,%u shared=%u context=%d stream=%d params=", f->name, gx,
             gy, gz, bx, by, bz, shared, current_context->device, stream_id(stream));
    if (f->nparams < 0)
        strncat(line, "?", sizeof line - strlen(line) - 1);
    for (int i = 0; i < f->nparams; i++) {
        if (i > 0)
            strncat(line, ",", sizeof line - strlen(line) - 1);
        if (!params[i])
            return CUDA_ERROR_INVALID_VALUE;
        print_param(line, sizeof line, &f->params[i], params[i]);
    }
    strncat(line, "\n", sizeof line - strlen(line) - 1);
    append(path, line);
    return CUDA_SUCCESS;
}

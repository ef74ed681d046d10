/*
 * fake_hip.c - a TEST DOUBLE of the HIP runtime library (libamdhip64.so).
 *
 * Why it exists: CI has no AMD GPU. Its real libamdhip64 (Debian's HIP 5.2)
 * reports zero devices, so kernelhub's ROCm backend (crates/kernelhub-hip)
 * is tested only as far as "no AMD GPU". The tests build this file into
 * libfakehip.so and point KERNELHUB_HIP_LIBRARY at it; the backend then runs
 * through its device path - properties in either hipDeviceProp_t layout,
 * streams, memory, code objects, launches - and meets on demand what real
 * runtimes do only on particular machines: another GPU architecture, HIP 6,
 * a code object for another processor.
 *
 * It exports exactly the required symbols of the `hip_api!` list in
 * crates/kernelhub-hip/src/sys.rs plus the two optional property calls
 * (hipGetDeviceProperties, hipGetDevicePropertiesR0600), with the C
 * signatures of hip_runtime_api.h; hipDeviceGetName is left out, so the name
 * comes from the properties as with runtimes that lack it. It runs no
 * kernel: "device memory" is malloc'd host memory, and hipModuleLaunchKernel
 * appends one line to FAKE_HIP_LAUNCH_LOG with the kernel, the geometry, the
 * stream, the calling thread's device and every explicit argument read
 * through kernelParams[i] with the size the code object's metadata note
 * (`amdhsa.kernels[].args`, MessagePack) declares - which is what shows the
 * parameter block matches the kernel's ABI.
 *
 * Like the real runtime: the current device is per thread and starts at 0;
 * modules belong to the device current when they were loaded, and using one
 * (or a stream) while another device is current fails with
 * hipErrorInvalidDevice (real HIP aborts on a module/device mismatch);
 * hipModuleLoadData refuses a code object for another processor, or one
 * whose xnack/sramecc setting the device lacks, with hipErrorNoBinaryForGpu;
 * copies and frees must stay inside live allocations (else
 * hipErrorInvalidValue); new memory is filled with 0xa5, not zeroed;
 * hipGetErrorString answers the name again before HIP 6, as HIP 5 does.
 *
 * Settings, from the environment, read on the first call:
 *   FAKE_HIP_DEVICES=N       N identical GPUs (default 1); 0: none -
 *                            hipGetDeviceCount answers hipErrorNoDevice with
 *                            0, hipInit hipErrorInvalidDevice (as HIP 5.2 does)
 *   FAKE_HIP_ARCH=name       gcnArchName (default gfx90a:sramecc+:xnack-)
 *   FAKE_HIP_RUNTIME=NNN     hipRuntimeGetVersion and hipDriverGetVersion
 *                            (default 50221153: HIP 5.2.21153; 60032830 is
 *                            HIP 6.0, where hipGetDevicePropertiesR0600 works)
 *   FAKE_HIP_LAUNCH_LOG=path the launch log (none when unset)
 *   FAKE_HIP_CALL_LOG=path   one line per runtime call with its device-related
 *                            arguments, e.g. `hipSetDevice 1` (none when unset)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_common.h"

typedef int hipError_t;
typedef int hipDevice_t;
typedef void *hipDeviceptr_t;
typedef void *hipModule_t;
typedef void *hipFunction_t;
typedef void *hipStream_t;

enum {
    hipSuccess = 0,
    hipErrorInvalidValue = 1,
    hipErrorOutOfMemory = 2,
    hipErrorInvalidConfiguration = 9,
    hipErrorNoDevice = 100,
    hipErrorInvalidDevice = 101,
    hipErrorInvalidImage = 200,
    hipErrorNoBinaryForGpu = 209,
    hipErrorInvalidHandle = 400,
    hipErrorNotFound = 500,
    hipErrorNotSupported = 801,
    hipErrorUnknown = 999,
};

#define MAX_DEVICES 8

/* ---- settings and state ---- */

static pthread_once_t settings_once = PTHREAD_ONCE_INIT;
static int device_count = 1;
static int runtime_version = 50221153;
static char arch[256] = "gfx90a:sramecc+:xnack-";
static unsigned arch_mach;  /* EF_AMDGPU_MACH of the processor; 0: unknown */
static int arch_xnack = -1; /* -1: not stated, 0: xnack-, 1: xnack+ */
static int arch_sramecc = -1;
static _Thread_local int current_device = 0;

/* EF_AMDGPU_MACH values (e_flags & 0xff) of the processors tests use; the
 * whole table is in crates/kernelhub-manifest/src/introspect/elf.rs. */
static const struct {
    const char *name;
    unsigned mach;
} machs[] = {
    {"gfx900", 0x2c},  {"gfx906", 0x2f},  {"gfx908", 0x30},  {"gfx90a", 0x3f},
    {"gfx940", 0x40},  {"gfx941", 0x4b},  {"gfx942", 0x4c},  {"gfx950", 0x4f},
    {"gfx1030", 0x36}, {"gfx1100", 0x41}, {"gfx1101", 0x46}, {"gfx1200", 0x48},
    {"gfx1201", 0x4e},
};

static void read_settings(void) {
    device_count = env_int("FAKE_HIP_DEVICES", device_count);
    if (device_count < 0)
        device_count = 0;
    if (device_count > MAX_DEVICES)
        device_count = MAX_DEVICES;
    runtime_version = env_int("FAKE_HIP_RUNTIME", runtime_version);
    const char *value = getenv("FAKE_HIP_ARCH");
    if (value && *value)
        snprintf(arch, sizeof arch, "%s", value);
    size_t processor = strcspn(arch, ":");
    for (size_t i = 0; i < COUNT_OF(machs); i++)
        if (strlen(machs[i].name) == processor && strncmp(arch, machs[i].name, processor) == 0)
            arch_mach = machs[i].mach;
    for (const char *f = strchr(arch, ':'); f; f = strchr(f + 1, ':')) {
        if (strncmp(f + 1, "xnack", 5) == 0 && (f[6] == '+' || f[6] == '-'))
            arch_xnack = f[6] == '+';
        if (strncmp(f + 1, "sramecc", 7) == 0 && (f[8] == '+' || f[8] == '-'))
            arch_sramecc = f[8] == '+';
    }
}

static void settings(void) { pthread_once(&settings_once, read_settings); }

/* One line of the call log. */
#define trace(...) log_line("FAKE_HIP_CALL_LOG", __VA_ARGS__)

static int valid_device(int device) { return device >= 0 && device < device_count; }

/* Memory, stream, module and launch calls work on the current device. */
#define NEED_DEVICE()                                                          \
    do {                                                                       \
        settings();                                                            \
        if (device_count == 0)                                                 \
            return hipErrorNoDevice;                                           \
    } while (0)

/* ---- errors ---- */

static const struct error_entry errors[] = {
    {hipSuccess, "hipSuccess", "no error"},
    {hipErrorInvalidValue, "hipErrorInvalidValue", "invalid argument"},
    {hipErrorOutOfMemory, "hipErrorOutOfMemory", "out of memory"},
    {hipErrorInvalidConfiguration, "hipErrorInvalidConfiguration",
     "invalid configuration argument"},
    {hipErrorNoDevice, "hipErrorNoDevice", "no ROCm-capable device is detected"},
    {hipErrorInvalidDevice, "hipErrorInvalidDevice", "invalid device ordinal"},
    {hipErrorInvalidImage, "hipErrorInvalidImage", "device kernel image is invalid"},
    {hipErrorNoBinaryForGpu, "hipErrorNoBinaryForGpu",
     "no kernel image is available for execution on the device"},
    {hipErrorInvalidHandle, "hipErrorInvalidHandle", "invalid resource handle"},
    {hipErrorNotFound, "hipErrorNotFound", "named symbol not found"},
    {hipErrorNotSupported, "hipErrorNotSupported", "operation not supported"},
    {hipErrorUnknown, "hipErrorUnknown", "unknown error"},
};

EXPORT const char *hipGetErrorName(hipError_t error) {
    const struct error_entry *e = find_error(errors, COUNT_OF(errors), error);
    return e ? e->name : "hipErrorUnknown";
}

EXPORT const char *hipGetErrorString(hipError_t error) {
    settings();
    if (runtime_version / 10000000 < 6)
        return hipGetErrorName(error); /* HIP 5 */
    const struct error_entry *e = find_error(errors, COUNT_OF(errors), error);
    return e ? e->text : "unknown error";
}

/* ---- runtime and devices ---- */

EXPORT hipError_t hipInit(unsigned int flags) {
    settings();
    trace("hipInit %u", flags);
    if (flags != 0)
        return hipErrorInvalidValue;
    return device_count > 0 ? hipSuccess : hipErrorInvalidDevice;
}

EXPORT hipError_t hipRuntimeGetVersion(int *version) {
    settings();
    if (!version)
        return hipErrorInvalidValue;
    *version = runtime_version;
    return hipSuccess;
}

EXPORT hipError_t hipDriverGetVersion(int *version) {
    settings();
    if (!version)
        return hipErrorInvalidValue;
    *version = runtime_version;
    return hipSuccess;
}

EXPORT hipError_t hipGetDeviceCount(int *count) {
    settings();
    if (!count)
        return hipErrorInvalidValue;
    *count = device_count;
    return device_count > 0 ? hipSuccess : hipErrorNoDevice;
}

EXPORT hipError_t hipDeviceTotalMem(size_t *bytes, hipDevice_t device) {
    NEED_DEVICE();
    if (!valid_device(device))
        return hipErrorInvalidDevice;
    if (!bytes)
        return hipErrorInvalidValue;
    *bytes = TOTAL_MEMORY;
    return hipSuccess;
}

EXPORT hipError_t hipSetDevice(int device) {
    NEED_DEVICE();
    trace("hipSetDevice %d", device);
    if (!valid_device(device))
        return hipErrorInvalidDevice;
    current_device = device;
    return hipSuccess;
}

EXPORT hipError_t hipGetDevice(int *device) {
    NEED_DEVICE();
    if (!device)
        return hipErrorInvalidValue;
    *device = current_device;
    return hipSuccess;
}

EXPORT hipError_t hipDeviceSynchronize(void) {
    NEED_DEVICE();
    trace("hipDeviceSynchronize device=%d", current_device);
    return hipSuccess;
}

/* Fills one hipDeviceProp_t of `size` bytes with name, total memory and
 * gcnArchName at the layout's offsets (crates/kernelhub-hip/src/properties.rs). */
static hipError_t fill_properties(void *prop, int device, size_t size, size_t memory_at,
                                  size_t arch_at) {
    NEED_DEVICE();
    if (!valid_device(device))
        return hipErrorInvalidDevice;
    if (!prop)
        return hipErrorInvalidValue;
    unsigned char *bytes = prop;
    memset(bytes, 0, size);
    snprintf((char *)bytes, 256, "%s", "kernelhub fake AMD GPU");
    uint64_t memory = TOTAL_MEMORY;
    memcpy(bytes + memory_at, &memory, sizeof memory);
    snprintf((char *)bytes + arch_at, 256, "%s", arch);
    return hipSuccess;
}

/* The unversioned export fills the old (R0000) layout in every HIP version. */
EXPORT hipError_t hipGetDeviceProperties(void *prop, int device) {
    trace("hipGetDeviceProperties %d", device);
    return fill_properties(prop, device, 792, 256, 396);
}

/* HIP 6+ only: a HIP 5 runtime has no such symbol, so before 6.0 it fails. */
EXPORT hipError_t hipGetDevicePropertiesR0600(void *prop, int device) {
    settings();
    trace("hipGetDevicePropertiesR0600 %d", device);
    if (runtime_version / 10000000 < 6)
        return hipErrorNotSupported;
    return fill_properties(prop, device, 1472, 288, 1160);
}

/* ---- streams: each belongs to the device current when it was made ---- */

#define STREAM_MAGIC 0x57eea11u
struct stream {
    unsigned magic;
    int device;
    int id; /* 1, 2, ...: the launch log's `stream=` (0: the null stream) */
};
static int streams_made;

/* Whether `stream` may be used now: null, or a live stream of the current device. */
static hipError_t stream_check(hipStream_t stream) {
    const struct stream *s = stream;
    if (!s)
        return hipSuccess;
    if (s->magic != STREAM_MAGIC)
        return hipErrorInvalidHandle;
    return s->device == current_device ? hipSuccess : hipErrorInvalidDevice;
}

static int stream_id(hipStream_t stream) { return stream ? ((struct stream *)stream)->id : 0; }

EXPORT hipError_t hipStreamCreateWithFlags(hipStream_t *stream, unsigned int flags) {
    NEED_DEVICE();
    if (!stream || flags > 1)
        return hipErrorInvalidValue;
    struct stream *s = malloc(sizeof *s);
    if (!s)
        return hipErrorOutOfMemory;
    s->magic = STREAM_MAGIC;
    s->device = current_device;
    pthread_mutex_lock(&lock);
    s->id = ++streams_made;
    pthread_mutex_unlock(&lock);
    trace("hipStreamCreateWithFlags %u device=%d stream=%d", flags, s->device, s->id);
    *stream = s;
    return hipSuccess;
}

EXPORT hipError_t hipStreamDestroy(hipStream_t stream) {
    NEED_DEVICE();
    if (!stream)
        return hipErrorInvalidHandle;
    hipError_t status = stream_check(stream);
    if (status != hipSuccess)
        return status;
    trace("hipStreamDestroy device=%d stream=%d", current_device, stream_id(stream));
    ((struct stream *)stream)->magic = 0;
    /* Kept (leaked), so a second destroy or a use after it is caught. */
    return hipSuccess;
}

EXPORT hipError_t hipStreamSynchronize(hipStream_t stream) {
    NEED_DEVICE();
    return stream_check(stream);
}

/* ---- memory: host memory, each allocation recorded (fake_common.h) ---- */

EXPORT hipError_t hipMalloc(void **pointer, size_t len) {
    NEED_DEVICE();
    if (!pointer)
        return hipErrorInvalidValue;
    if (len == 0) { /* as HIP: success, and a null pointer */
        *pointer = NULL;
        return hipSuccess;
    }
    void *memory = allocate(len);
    if (!memory)
        return hipErrorOutOfMemory;
    *pointer = memory;
    return hipSuccess;
}

EXPORT hipError_t hipFree(void *pointer) {
    NEED_DEVICE();
    if (!pointer)
        return hipSuccess;
    return release((uintptr_t)pointer) ? hipSuccess : hipErrorInvalidValue;
}

static hipError_t copy(void *dst, const void *src, size_t len, const void *device_side,
                       hipStream_t stream) {
    NEED_DEVICE();
    hipError_t status = stream_check(stream);
    if (status != hipSuccess)
        return status;
    return copy_checked(dst, src, len, (uintptr_t)device_side) ? hipSuccess
                                                                : hipErrorInvalidValue;
}

EXPORT hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void *src, size_t len,
                                     hipStream_t stream) {
    return copy(dst, src, len, dst, stream);
}

EXPORT hipError_t hipMemcpyDtoHAsync(void *dst, hipDeviceptr_t src, size_t len,
                                     hipStream_t stream) {
    return copy(dst, src, len, src, stream);
}

EXPORT hipError_t hipMemsetD8Async(hipDeviceptr_t dst, unsigned char value, size_t len,
                                   hipStream_t stream) {
    NEED_DEVICE();
    hipError_t status = stream_check(stream);
    if (status != hipSuccess)
        return status;
    return fill_checked((uintptr_t)dst, value, len) ? hipSuccess : hipErrorInvalidValue;
}

/* ---- code objects ---- */

/* How the launch log prints an argument. */
enum print { HEX, UNSIGNED, BYTES };

struct param {
    unsigned size;
    enum print print;
};

#define FUNCTION_MAGIC 0xf00c7105u
struct module;
struct function {
    unsigned magic;
    struct module *module;
    char name[256];
    int nparams; /* -1: no metadata for it */
    struct param params[64];
};

struct module {
    int loaded;
    int device;
    int nfunctions;
    struct function *functions;
};

/* -- a small MessagePack reader over [p, end): just what the metadata note
 * needs; every read is bounds-checked and a bad byte stops it (p = NULL). -- */

struct mp {
    const unsigned char *p, *end;
};

static int mp_take(struct mp *m, size_t n, const unsigned char **out) {
    if (!m->p || (size_t)(m->end - m->p) < n) {
        m->p = NULL;
        return 0;
    }
    *out = m->p;
    m->p += n;
    return 1;
}

/* Reads one value's header: its kind ('m' map, 'a' array, 's' string, 'u'
 * unsigned, 'o' other), its count (entries, elements, bytes) or value. */
static int mp_head(struct mp *m, char *kind, uint64_t *n) {
    const unsigned char *b;
    if (!mp_take(m, 1, &b))
        return 0;
    unsigned c = *b;
    const unsigned char *x;
    *n = 0;
    if (c <= 0x7f) {
        *kind = 'u';
        *n = c;
    } else if (c >= 0x80 && c <= 0x8f) {
        *kind = 'm';
        *n = c & 0xf;
    } else if (c >= 0x90 && c <= 0x9f) {
        *kind = 'a';
        *n = c & 0xf;
    } else if (c >= 0xa0 && c <= 0xbf) {
        *kind = 's';
        *n = c & 0x1f;
    } else if (c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        *kind = 'o';
    } else {
        static const struct {
            unsigned char code;
            char kind;
            unsigned len;   /* bytes of the length or value */
            unsigned fixed; /* bytes that follow, beyond a length */
        } forms[] = {
            {0xcc, 'u', 1, 0}, {0xcd, 'u', 2, 0}, {0xce, 'u', 4, 0}, {0xcf, 'u', 8, 0},
            {0xd0, 'o', 0, 1}, {0xd1, 'o', 0, 2}, {0xd2, 'o', 0, 4}, {0xd3, 'o', 0, 8},
            {0xca, 'o', 0, 4}, {0xcb, 'o', 0, 8}, {0xd9, 's', 1, 0}, {0xda, 's', 2, 0},
            {0xdb, 's', 4, 0}, {0xc4, 'b', 1, 0}, {0xc5, 'b', 2, 0}, {0xc6, 'b', 4, 0},
            {0xdc, 'a', 2, 0}, {0xdd, 'a', 4, 0}, {0xde, 'm', 2, 0}, {0xdf, 'm', 4, 0},
            {0xd4, 'o', 0, 2}, {0xd5, 'o', 0, 3}, {0xd6, 'o', 0, 5}, {0xd7, 'o', 0, 9},
            {0xd8, 'o', 0, 17},
        };
        size_t i = 0;
        while (i < COUNT_OF(forms) && forms[i].code != c)
            i++;
        if (i == COUNT_OF(forms)) { /* ext 8/16/32: not in metadata */
            m->p = NULL;
            return 0;
        }
        *kind = forms[i].kind;
        if (forms[i].len) {
            if (!mp_take(m, forms[i].len, &x))
                return 0;
            for (unsigned k = 0; k < forms[i].len; k++) /* big-endian */
                *n = (*n << 8) | x[k];
        }
        if (forms[i].fixed && !mp_take(m, forms[i].fixed, &x))
            return 0;
        if (*kind == 'b') { /* bin: skipped like a string */
            *kind = 'o';
            return mp_take(m, *n, &x);
        }
    }
    return 1;
}

/* Skips one whole value; `depth` caps the nesting. */
static int mp_skip(struct mp *m, int depth) {
    char kind;
    uint64_t n;
    const unsigned char *x;
    if (depth > 32 || !mp_head(m, &kind, &n))
        return 0;
    if (kind == 's')
        return mp_take(m, n, &x);
    if (kind == 'a' || kind == 'm') {
        uint64_t values = kind == 'm' ? 2 * n : n;
        for (uint64_t i = 0; i < values; i++)
            if (!mp_skip(m, depth + 1))
                return 0;
    }
    return m->p != NULL;
}

/* Reads a string value into `out` (NUL-terminated, cut to `cap`). */
static int mp_string(struct mp *m, char *out, size_t cap) {
    char kind;
    uint64_t n;
    const unsigned char *x;
    if (!mp_head(m, &kind, &n) || kind != 's' || !mp_take(m, n, &x))
        return 0;
    size_t len = n < cap - 1 ? (size_t)n : cap - 1;
    memcpy(out, x, len);
    out[len] = 0;
    return 1;
}

/* One `.args` entry: `.size` and `.value_kind`; 1 if explicit (not hidden_*). */
static int read_arg(struct mp *m, struct param *param) {
    char kind, value_kind[64] = "", key[64];
    uint64_t n, size = 0;
    if (!mp_head(m, &kind, &n) || kind != 'm')
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        if (!mp_string(m, key, sizeof key))
            return -1;
        if (strcmp(key, ".size") == 0) {
            if (!mp_head(m, &kind, &size) || kind != 'u')
                return -1;
        } else if (strcmp(key, ".value_kind") == 0) {
            if (!mp_string(m, value_kind, sizeof value_kind))
                return -1;
        } else if (!mp_skip(m, 0)) {
            return -1;
        }
    }
    if (strncmp(value_kind, "hidden_", 7) == 0)
        return 0;
    if (size == 0 || size > 256)
        return -1;
    param->size = (unsigned)size;
    param->print = strcmp(value_kind, "global_buffer") == 0 ? HEX
                   : size <= 8                             ? UNSIGNED
                                                           : BYTES;
    return 1;
}

/* Gives each function of `mod` named in the note's `amdhsa.kernels` its
 * explicit arguments. */
static hipError_t read_metadata(struct module *mod, const unsigned char *note, size_t len) {
    struct mp m = {note, note + len};
    char kind, key[64];
    uint64_t n;
    if (!mp_head(&m, &kind, &n) || kind != 'm')
        return hipErrorInvalidImage;
    for (uint64_t i = 0; i < n; i++) {
        if (!mp_string(&m, key, sizeof key))
            return hipErrorInvalidImage;
        if (strcmp(key, "amdhsa.kernels") != 0) {
            if (!mp_skip(&m, 0))
                return hipErrorInvalidImage;
            continue;
        }
        uint64_t kernels;
        if (!mp_head(&m, &kind, &kernels) || kind != 'a')
            return hipErrorInvalidImage;
        for (uint64_t k = 0; k < kernels; k++) {
            uint64_t fields;
            char name[256] = "";
            struct param params[64];
            int nparams = -1;
            if (!mp_head(&m, &kind, &fields) || kind != 'm')
                return hipErrorInvalidImage;
            for (uint64_t f = 0; f < fields; f++) {
                if (!mp_string(&m, key, sizeof key))
                    return hipErrorInvalidImage;
                if (strcmp(key, ".name") == 0) {
                    if (!mp_string(&m, name, sizeof name))
                        return hipErrorInvalidImage;
                } else if (strcmp(key, ".args") == 0) {
                    uint64_t args;
                    if (!mp_head(&m, &kind, &args) || kind != 'a')
                        return hipErrorInvalidImage;
                    nparams = 0;
                    for (uint64_t a = 0; a < args; a++) {
                        if (nparams == 64)
                            return hipErrorInvalidImage;
                        int explicit = read_arg(&m, &params[nparams]);
                        if (explicit < 0)
                            return hipErrorInvalidImage;
                        nparams += explicit;
                    }
                } else if (!mp_skip(&m, 0)) {
                    return hipErrorInvalidImage;
                }
            }
            for (int j = 0; j < mod->nfunctions; j++)
                if (strcmp(mod->functions[j].name, name) == 0) {
                    mod->functions[j].nparams = nparams < 0 ? 0 : nparams;
                    memcpy(mod->functions[j].params, params, sizeof params);
                }
        }
    }
    return hipSuccess;
}

static struct function *add_function(struct module *m, const char *name) {
    struct function *grown = realloc(m->functions, (size_t)(m->nfunctions + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    m->functions = grown;
    struct function *f = &grown[m->nfunctions++];
    memset(f, 0, sizeof *f);
    f->magic = FUNCTION_MAGIC;
    f->nparams = -1;
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* Whether a code object's feature setting (v4+: 0 unsupported, 1 any, 2 off,
 * 3 on) runs on a device that has the feature on (1), off (0) or unstated (-1). */
static int feature_fits(unsigned setting, int device) {
    if (setting == 2)
        return device != 1;
    if (setting == 3)
        return device != 0;
    return 1;
}

/* An AMD GPU code object: 64-bit little-endian ELF, EM_AMDGPU (224). */
static hipError_t load_elf(struct module *m, const unsigned char *elf) {
    if (!elf_is_64_le(elf) || read_le(elf + 18, 2) != 224)
        return hipErrorInvalidImage;
    unsigned flags = (unsigned)read_le(elf + 48, 4);
    if ((flags & 0xff) != arch_mach)
        return hipErrorNoBinaryForGpu;
    if (elf[8] >= 2 && /* code object v4+ */
        (!feature_fits((flags >> 8) & 3, arch_xnack) ||
         !feature_fits((flags >> 10) & 3, arch_sramecc)))
        return hipErrorNoBinaryForGpu;
    uint64_t shoff;
    unsigned shnum;
    if (elf_sections(elf, &shoff, &shnum) <= 0)
        return hipErrorInvalidImage;
    /* Kernels: a function symbol with its `<name>.kd` descriptor, from
     * .dynsym (what the loader reads), else .symtab. */
    const unsigned char *symtab = NULL;
    for (unsigned s = 0; s < shnum; s++) {
        const unsigned char *sh = elf_section(elf, shoff, s);
        uint32_t type = elf_section_type(sh);
        if (type == 11 || (type == 2 && !symtab))
            symtab = sh;
    }
    struct elf_symbols table;
    if (!symtab || !elf_symbols(elf, shoff, shnum, symtab, &table))
        return hipErrorInvalidImage;
    for (uint64_t i = 0; i < table.count; i++) {
        if (elf_symbol_type(&table, i) != 2) /* STT_FUNC */
            continue;
        const char *name = elf_symbol_name(&table, i);
        int described = 0;
        for (uint64_t j = 0; j < table.count && !described; j++) {
            const char *kd_name = elf_symbol_name(&table, j);
            described = elf_symbol_type(&table, j) == 1 /* STT_OBJECT */ &&
                        strncmp(kd_name, name, strlen(name)) == 0 &&
                        strcmp(kd_name + strlen(name), ".kd") == 0;
        }
        if (described && !add_function(m, name))
            return hipErrorOutOfMemory;
    }
    /* Arguments: the NT_AMDGPU_METADATA (32) note "AMDGPU". */
    for (unsigned s = 0; s < shnum; s++) {
        const unsigned char *sh = elf_section(elf, shoff, s);
        if (elf_section_type(sh) != 7) /* SHT_NOTE */
            continue;
        const unsigned char *note = elf + read_le(sh + 24, 8);
        uint64_t left = read_le(sh + 32, 8);
        while (left >= 12) {
            uint32_t namesz = (uint32_t)read_le(note, 4), descsz = (uint32_t)read_le(note + 4, 4);
            uint32_t type = (uint32_t)read_le(note + 8, 4);
            uint64_t name_len = (namesz + 3u) & ~3u, desc_len = (descsz + 3ull) & ~3ull;
            if (12 + name_len + desc_len > left)
                return hipErrorInvalidImage;
            if (type == 32 && namesz == 7 && memcmp(note + 12, "AMDGPU", 7) == 0) {
                hipError_t status = read_metadata(m, note + 12 + name_len, descsz);
                if (status != hipSuccess)
                    return status;
            }
            note += 12 + name_len + desc_len;
            left -= 12 + name_len + desc_len;
        }
    }
    return hipSuccess;
}

EXPORT hipError_t hipModuleLoadData(hipModule_t *module, const void *image) {
    NEED_DEVICE();
    trace("hipModuleLoadData device=%d", current_device);
    if (!module || !image)
        return hipErrorInvalidValue;
    const unsigned char *bytes = image;
    if (!(bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F'))
        return hipErrorInvalidImage;
    struct module *m = calloc(1, sizeof *m);
    if (!m)
        return hipErrorOutOfMemory;
    hipError_t status = load_elf(m, bytes);
    if (status != hipSuccess) {
        free(m->functions);
        free(m);
        return status;
    }
    for (int i = 0; i < m->nfunctions; i++)
        m->functions[i].module = m;
    m->loaded = 1;
    m->device = current_device;
    *module = m;
    return hipSuccess;
}

/* A live module of the current device (real HIP aborts on a mismatch). */
static hipError_t module_check(const struct module *m) {
    if (!m || !m->loaded)
        return hipErrorInvalidHandle;
    return m->device == current_device ? hipSuccess : hipErrorInvalidDevice;
}

EXPORT hipError_t hipModuleUnload(hipModule_t module) {
    NEED_DEVICE();
    trace("hipModuleUnload device=%d", current_device);
    struct module *m = module;
    hipError_t status = module_check(m);
    if (status != hipSuccess)
        return status;
    /* Kept (leaked) so a launch of one of its functions is caught. */
    m->loaded = 0;
    return hipSuccess;
}

EXPORT hipError_t hipModuleGetFunction(hipFunction_t *function, hipModule_t module,
                                       const char *name) {
    NEED_DEVICE();
    struct module *m = module;
    if (!function || !name)
        return hipErrorInvalidValue;
    hipError_t status = module_check(m);
    if (status != hipSuccess)
        return status;
    for (int i = 0; i < m->nfunctions; i++)
        if (strcmp(m->functions[i].name, name) == 0) {
            *function = &m->functions[i];
            return hipSuccess;
        }
    return hipErrorNotFound;
}

/* ---- launches: logged, not run ---- */

static void print_param(char *out, size_t cap, const struct param *p, const unsigned char *value) {
    size_t n = strlen(out);
    if (p->print == BYTES || p->size > 8) {
        n += (size_t)snprintf(out + n, cap - n, "0x");
        for (unsigned i = 0; i < p->size && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%02x", value[i]);
        return;
    }
    uint64_t bits = read_le(value, p->size);
    snprintf(out + n, cap - n, p->print == HEX ? "0x%llx" : "%llu", (unsigned long long)bits);
}

EXPORT hipError_t hipModuleLaunchKernel(hipFunction_t function, unsigned int gx, unsigned int gy,
                                        unsigned int gz, unsigned int bx, unsigned int by,
                                        unsigned int bz, unsigned int shared, hipStream_t stream,
                                        void **params, void **extra) {
    NEED_DEVICE();
    struct function *f = function;
    if (!f || f->magic != FUNCTION_MAGIC)
        return hipErrorInvalidHandle;
    hipError_t status = module_check(f->module);
    if (status == hipSuccess)
        status = stream_check(stream);
    if (status != hipSuccess)
        return status;
    if (!gx || !gy || !gz || !bx || !by || !bz || (unsigned long long)bx * by * bz > 1024 ||
        gx > 2147483647u || gy > 65535 || gz > 65535 || shared > 64 * 1024)
        return hipErrorInvalidConfiguration;
    if ((params && extra) || (f->nparams > 0 && !params))
        return hipErrorInvalidValue;
    char line[8192];
    snprintf(line, sizeof line,
             "%s grid=%u,%u,%u block=%u,%u,%u shared=%u stream=%d device=%d params=", f->name, gx,
             gy, gz, bx, by, bz, shared, stream_id(stream), current_device);
    if (f->nparams < 0)
        strncat(line, "?", sizeof line - strlen(line) - 1);
    for (int i = 0; i < f->nparams; i++) {
        if (i > 0)
            strncat(line, ",", sizeof line - strlen(line) - 1);
        if (!params[i])
            return hipErrorInvalidValue;
        print_param(line, sizeof line, &f->params[i], params[i]);
    }
    strncat(line, "\n", sizeof line - strlen(line) - 1);
    append(getenv("FAKE_HIP_LAUNCH_LOG"), line);
    return hipSuccess;
}

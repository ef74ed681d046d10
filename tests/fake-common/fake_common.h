/*
 * fake_common.h - what the TEST DOUBLES of the GPU driver libraries share:
 * tests/fake-cuda/fake_cuda.c (libcuda.so.1) and tests/fake-hip/fake_hip.c
 * (libamdhip64.so). Both stand in for a driver on machines without the GPU
 * (see their own comments for why), and both do the same things under
 * their API: "device memory" is malloc'd host memory whose allocations are
 * recorded, so copies, fills and frees are checked against live ones; error
 * codes have a name and a text in a table; settings are integers from the
 * environment; logs get one line appended per call; code objects are
 * 64-bit little-endian ELF files whose symbol tables name the kernels.
 *
 * Everything here is `static` (functions `static inline`, so those a fake
 * does not use draw no warning): a fake exports exactly the symbols of its
 * API, which the tests check with `nm` (the_fake_exports_exactly_the_symbols_
 * the_backend_binds). tests/support/c_library.rs compiles each fake with
 * this directory on the include path.
 */
#ifndef KERNELHUB_FAKE_COMMON_H
#define KERNELHUB_FAKE_COMMON_H

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An API function of the fake: the only symbols it exports. */
#define EXPORT __attribute__((visibility("default")))

/* Device memory the fake GPU reports, and the most it hands out. */
#define TOTAL_MEMORY (1ull << 30)

/* The number of entries of an array. */
#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* The fake's one lock: allocations, logs and its own shared state. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- settings ---- */

/* The integer in environment variable `name`; `fallback` if unset or empty. */
static inline int env_int(const char *name, int fallback) {
    const char *value = getenv(name);
    return value && *value ? atoi(value) : fallback;
}

/* ---- errors ---- */

/* One error code of the API, its name and its text. */
struct error_entry {
    int code;
    const char *name;
    const char *text;
};

/* The entry of `code` in `table` (`count` entries); NULL if it has none. */
static inline const struct error_entry *find_error(const struct error_entry *table, size_t count,
                                                   int code) {
    for (size_t i = 0; i < count; i++)
        if (table[i].code == code)
            return &table[i];
    return NULL;
}

/* ---- logs ---- */

/* Appends `line` to the file `path` (nothing if unset or empty), under the lock. */
static inline void append(const char *path, const char *line) {
    if (!path || !*path)
        return;
    pthread_mutex_lock(&lock);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, line, strlen(line));
        (void)written;
        close(fd);
    }
    pthread_mutex_unlock(&lock);
}

/* Appends one line, `format` filled in, to the file that environment
 * variable `setting` names (nothing if unset or empty). */
__attribute__((format(printf, 2, 3))) static inline void log_line(const char *setting,
                                                                  const char *format, ...) {
    const char *path = getenv(setting);
    if (!path || !*path)
        return;
    char line[512];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line - 1, format, args);
    va_end(args);
    strcat(line, "\n");
    append(path, line);
}

/* ---- memory: host memory, each allocation recorded ---- */

struct allocation {
    uintptr_t base;
    size_t len;
    struct allocation *next;
};
static struct allocation *allocations;
static unsigned long long allocated;

/* Whether [address, address + len) lies in one live allocation. */
static inline int inside(uintptr_t address, size_t len) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (struct allocation *a = allocations; a; a = a->next)
        if (address >= a->base && len <= a->len && address - a->base <= a->len - len)
            found = 1;
    pthread_mutex_unlock(&lock);
    return found;
}

/* `len` (> 0) bytes of "device memory", recorded; NULL when that would
 * pass TOTAL_MEMORY or the host has no more. Filled with 0xa5, not zeroed:
 * the caller must clear what it hands out. */
static inline void *allocate(size_t len) {
    pthread_mutex_lock(&lock);
    int full = allocated + len > TOTAL_MEMORY;
    pthread_mutex_unlock(&lock);
    if (full)
        return NULL;
    void *memory = malloc(len);
    struct allocation *a = malloc(sizeof *a);
    if (!memory || !a) {
        free(memory);
        free(a);
        return NULL;
    }
    memset(memory, 0xa5, len);
    a->base = (uintptr_t)memory;
    a->len = len;
    pthread_mutex_lock(&lock);
    a->next = allocations;
    allocations = a;
    allocated += len;
    pthread_mutex_unlock(&lock);
    return memory;
}

/* Frees the allocation starting at `address`; 0 if there is none. */
static inline int release(uintptr_t address) {
    struct allocation *found = NULL;
    pthread_mutex_lock(&lock);
    for (struct allocation **a = &allocations; *a; a = &(*a)->next)
        if ((*a)->base == address) {
            found = *a;
            *a = found->next;
            allocated -= found->len;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (!found)
        return 0;
    free((void *)found->base);
    free(found);
    return 1;
}

/* Copies `len` bytes from `src` to `dst`, one of which, `device_side`, must
 * lie in a live allocation; 0 (nothing copied) if not or a pointer is null. */
static inline int copy_checked(void *dst, const void *src, size_t len, uintptr_t device_side) {
    if (!dst || !src || !inside(device_side, len))
        return 0;
    memcpy(dst, src, len);
    return 1;
}

/* Sets `len` bytes at `dst` to `value`; 0 (nothing set) unless they lie in
 * a live allocation. */
static inline int fill_checked(uintptr_t dst, unsigned char value, size_t len) {
    if (!inside(dst, len))
        return 0;
    memset((void *)dst, value, len);
    return 1;
}

/* ---- ELF: 64-bit little-endian, as cubins and AMD GPU code objects are ---- */

/* The `n`-byte little-endian integer at `p`. */
static inline uint64_t read_le(const unsigned char *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Whether `elf` (whose first four bytes are the ELF magic) is 64-bit and
 * little-endian. */
static inline int elf_is_64_le(const unsigned char *elf) { return elf[4] == 2 && elf[5] == 1; }

/* The section header table of `elf`: 1 with `*shoff` and `*shnum` set; 0
 * when it has none; -1 when its entries are not 64-byte ones or too many. */
static inline int elf_sections(const unsigned char *elf, uint64_t *shoff, unsigned *shnum) {
    *shoff = read_le(elf + 40, 8);
    *shnum = (unsigned)read_le(elf + 60, 2);
    unsigned shentsize = (unsigned)read_le(elf + 58, 2);
    if (*shoff == 0 || *shnum == 0)
        return 0;
    if (shentsize != 64 || *shnum > 4096)
        return -1;
    return 1;
}

/* The header of section `s`, and its type (sh_type). */
static inline const unsigned char *elf_section(const unsigned char *elf, uint64_t shoff,
                                               unsigned s) {
    return elf + shoff + 64u * s;
}

static inline uint32_t elf_section_type(const unsigned char *sh) {
    return (uint32_t)read_le(sh + 4, 4);
}

/* A symbol table section: its entries and the string table of their names. */
struct elf_symbols {
    const char *names;
    const unsigned char *symbols;
    uint64_t count;
};

/* Reads the symbol table section `sh` of `elf` (`shnum` sections from
 * `shoff`); 0 when its string table is not a section of the file. */
static inline int elf_symbols(const unsigned char *elf, uint64_t shoff, unsigned shnum,
                              const unsigned char *sh, struct elf_symbols *table) {
    uint32_t link = (uint32_t)read_le(sh + 40, 4);
    if (link >= shnum)
        return 0;
    table->names = (const char *)elf + read_le(elf_section(elf, shoff, link) + 24, 8);
    table->symbols = elf + read_le(sh + 24, 8);
    table->count = read_le(sh + 32, 8) / 24;
    return 1;
}

/* Symbol `i` of `table`: its name and its type (STT_FUNC 2, STT_OBJECT 1). */
static inline const char *elf_symbol_name(const struct elf_symbols *table, uint64_t i) {
    return table->names + read_le(table->symbols + 24 * i, 4);
}

static inline unsigned elf_symbol_type(const struct elf_symbols *table, uint64_t i) {
    return table->symbols[24 * i + 4] & 0xf;
}

#endif

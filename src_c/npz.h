/*
 * npz.h: reading .npz archives without allocating (npz.c), for the model-file
 * reader.  Internal to the engine: not part of the public API (the shared
 * library hides these names).
 */
#ifndef CSAE_NPZ_H
#define CSAE_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "csae.h"

/* The stack buffer every read goes through; also bounds a .npy header. */
#define CSAE_NPZ_BUF 4096

/* Most entries a directory may list: far more than any csae file has
 * (csae/_persist.py's _MAX_MEMBERS), few enough that a crafted directory of
 * millions is refused before any entry is read. */
#define CSAE_NPZ_MAX_ENTRIES 64

/* An open archive. */
typedef struct {
    int fd;
    uint64_t size;
} npz_file;

/* An .npy array's header, as parsed. */
typedef struct {
    char kind;          /* 'f' float, 'i' signed, 'u' unsigned, 'U' UTF-32 string */
    int swap;           /* stored in the other byte order than the host's */
    uint64_t itemsize;  /* bytes per element (U: 4 x characters) */
    int ndim;           /* 0, 1 or 2 (more is refused) */
    uint64_t shape[2];
    uint64_t count;     /* elements */
    uint64_t payload;   /* file offset of the first element */
} npy_array;

/* One member of the archive. */
typedef struct {
    int present;
    uint64_t offset;    /* local header */
    uint64_t data;      /* first byte of the .npy file */
    uint64_t size;
    uint32_t crc;
    npy_array array;    /* filled by csae_npy_read_header */
} npz_member;

/* Open a regular file: CSAE_ERR_NOT_FOUND, CSAE_ERR_NOT_A_FILE (a directory,
 * a FIFO: never blocks) or CSAE_ERR_FILE otherwise. */
csae_status csae_npz_open(const char *path, npz_file *f);
void csae_npz_close(npz_file *f);
/* An already open descriptor as an archive (its caller decides whether to
 * close it): CSAE_ERR_NOT_A_FILE unless it is a regular file. */
csae_status csae_npz_from_fd(int fd, npz_file *f);

/* The archive's directory: members[i] describes the member named names[i]
 * (present = 0 if there is none); *unknown is set if the archive holds other
 * names.  Refuses (CSAE_ERR_FORMAT) a damaged directory, one of more than
 * CSAE_NPZ_MAX_ENTRIES entries, a name twice,
 * members outside the data area or overlapping; CSAE_ERR_UNSUPPORTED for
 * compressed or encrypted members. */
csae_status csae_npz_directory(const npz_file *f, const char *const *names, size_t count,
                               npz_member *members, int *unknown);
/* The same with another bound on the entries (a deep model's file has
 * members per layer: CSAE_DEEP_FILE_MAX_ENTRIES). */
csae_status csae_npz_directory_max(const npz_file *f, const char *const *names, size_t count,
                                   npz_member *members, int *unknown, uint64_t max_entries);

/* Parse member m's .npy header into m->array: version 1.0 or 2.0, a header
 * that fits the buffer, descr f4/f8, i1-i8, u1-u8 or U<k>, at most 2-D, and
 * exactly shape x itemsize bytes after it (CSAE_ERR_UNSUPPORTED for a
 * Fortran-ordered matrix). */
csae_status csae_npy_read_header(const npz_file *f, npz_member *m);

/* Called with n bytes holding whole units (elements, or UTF-32 code units). */
typedef csae_status (*npz_consume_fn)(void *ctx, const unsigned char *p, size_t n);

/* Read member m whole (CRC-32 over all of it) and hand its elements to fn
 * in chunks of whole units of `unit` bytes (1 to 8). */
csae_status csae_npz_stream(const npz_file *f, const npz_member *m, size_t unit,
                            npz_consume_fn fn, void *ctx);

/* A cursor over text (npy headers, JSON) and its tokens; each skips
 * leading whitespace and returns nonzero if the token was there. */
typedef struct {
    const char *s;
    size_t n, i;
} text_cursor;

void csae_text_space(text_cursor *c);
int csae_text_char(text_cursor *c, char ch);
int csae_text_word(text_cursor *c, const char *word);
/* Decimal digits (at least one) into *v; 0 on overflow or none. */
int csae_text_u64(text_cursor *c, uint64_t *v);

#endif /* CSAE_NPZ_H */

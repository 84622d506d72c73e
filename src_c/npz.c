/*
 * npz.c: reading .npz archives (zips of .npy arrays, as numpy.savez writes
 * them) without allocating: the zip directory, .npy headers, and members
 * streamed through a fixed stack buffer with their CRC-32 checked.
 * Internal to the library (npz.h); model_file.c reads csae's models with it.
 *
 * Everything read from the file is distrusted: sizes are 64-bit, products go
 * through checked_mul_u64 (checked_mul.h), which reports overflow, every sum
 * is of a value already checked to lie inside the file with small header
 * lengths, and every read goes through read_at, which refuses any range not
 * inside the file.
 */
#define _POSIX_C_SOURCE 200809L /* pread, O_CLOEXEC */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#ifdef _WIN32
#include <io.h>
#include <windows.h>
#else
#include <unistd.h>
#endif

#include "checked_mul.h"
#include "npz.h"

/* ---- The platform: opening, sizing and positioned reads ----------------
 * The only place the engine touches files.  POSIX: open, fstat, pread.
 * Windows (MinGW, MSVC): the CRT's descriptors in binary mode, _fstati64
 * for sizes beyond 2 GiB, and ReadFile at an explicit offset (OVERLAPPED
 * on the descriptor's handle), which like pread leaves no shared file
 * position to race on. */

#ifdef _WIN32
#define OPEN_FLAGS (O_RDONLY | O_BINARY)
typedef struct _stati64 file_stat;
#define file_fstat _fstati64
#define file_close _close

/* Up to len bytes at offset: the count, 0 at the end of the file, -1 on
 * error. */
static long long read_some(int fd, void *buf, size_t len, uint64_t offset)
{
    const HANDLE h = (HANDLE)_get_osfhandle(fd);
    if (h == INVALID_HANDLE_VALUE)
        return -1;
    OVERLAPPED at;
    memset(&at, 0, sizeof at);
    at.Offset = (DWORD)offset;
    at.OffsetHigh = (DWORD)(offset >> 32);
    DWORD got = 0;
    const DWORD want = len > 0x40000000u ? 0x40000000u : (DWORD)len;
    if (!ReadFile(h, buf, want, &got, &at))
        return GetLastError() == ERROR_HANDLE_EOF ? 0 : -1;
    return (long long)got;
}
#else
/* O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then
 * refuses it); it changes nothing for regular files. */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK)
typedef struct stat file_stat;
#define file_fstat fstat
#define file_close close

static long long read_some(int fd, void *buf, size_t len, uint64_t offset)
{
    return (long long)pread(fd, buf, len, (off_t)offset);
}
#endif

/* Longest member name read (the longest csae writes,
 * "velocity_decoder_weights.npy", is 28 characters). */
#define MAX_NAME 64
/* Longest extra field read, in the central or the local header: a name
 * and its extra field are read together into one CSAE_NPZ_BUF buffer. */
#define MAX_EXTRA (CSAE_NPZ_BUF - MAX_NAME)

/* Whether a central or local header's general-purpose flags set a bit no
 * reader here honours: 0 encrypted, 5 patch data, 6 strong encryption. */
static int unsupported_flags(uint32_t flags) { return (flags & 0x61u) != 0; }

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u

/* ---- Little-endian fields ----------------------------------------------- */

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* ---- CRC-32 (zip's polynomial 0xEDB88320, reflected) ---------------------- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du
};

/* crc is the running value before the final inversion (start at 0xFFFFFFFF). */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return crc;
}

/* ---- The open file ----------------------------------------------------- */


/* Exactly len bytes at offset, or CSAE_ERR_FORMAT if the range is not
 * inside the file (or the file shrank while being read). */
static csae_status read_at(const npz_file *r, uint64_t offset, void *buf, size_t len)
{
    if (offset > r->size || len > r->size - offset)
        return CSAE_ERR_FORMAT;
    unsigned char *p = buf;
    while (len > 0) {
        const long long got = read_some(r->fd, p, len, offset);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return CSAE_ERR_FILE;
        }
        if (got == 0)
            return CSAE_ERR_FORMAT;
        p += got;
        len -= (size_t)got;
        offset += (uint64_t)got;
    }
    return CSAE_OK;
}

csae_status csae_npz_from_fd(int fd, npz_file *r)
{
    file_stat st;
    if (fd < 0 || file_fstat(fd, &st) != 0)
        return CSAE_ERR_FILE;
    if (!S_ISREG(st.st_mode))
        return CSAE_ERR_NOT_A_FILE;
    r->fd = fd;
    r->size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    return CSAE_OK;
}

csae_status csae_npz_open(const char *path, npz_file *r)
{
    int fd;
    do {
        fd = open(path, OPEN_FLAGS);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? CSAE_ERR_NOT_FOUND : CSAE_ERR_FILE;
    const csae_status st = csae_npz_from_fd(fd, r);
    if (st != CSAE_OK)
        file_close(fd);
    return st;
}

/* ---- Zip structure ------------------------------------------------------ */

/* Position of the end-of-central-directory record: the file's last 22
 * bytes, with no archive comment.  csae writes no comment, and zip readers
 * disagree on which record counts when a comment holds another signature
 * (Python's zipfile takes the last signature it finds, others the one whose
 * comment ends the file): a file with a comment could show each reader
 * another directory, so it is refused. */
static csae_status find_eocd(const npz_file *r, uint64_t *eocd)
{
    if (r->size < 22)
        return CSAE_ERR_FORMAT;
    unsigned char rec[22];
    const csae_status st = read_at(r, r->size - 22, rec, sizeof rec);
    if (st != CSAE_OK)
        return st;
    if (le32(rec) != SIG_EOCD || le16(rec + 20) != 0)
        return CSAE_ERR_FORMAT;
    *eocd = r->size - 22;
    return CSAE_OK;
}

/* The central directory's extent and entry count, from the EOCD record (or
 * the zip64 one that a locator just before it points to). */
static csae_status central_directory(const npz_file *r, uint64_t *cd_offset, uint64_t *cd_end,
                                     uint64_t *entries)
{
    uint64_t eocd = 0;
    csae_status st = find_eocd(r, &eocd);
    if (st != CSAE_OK)
        return st;
    unsigned char rec[56];
    st = read_at(r, eocd, rec, 22);
    if (st != CSAE_OK)
        return st;
    if (le16(rec + 4) != 0 || le16(rec + 6) != 0 || le16(rec + 8) != le16(rec + 10))
        return CSAE_ERR_FORMAT; /* multi-disk archives */
    uint64_t n = le16(rec + 10), size = le32(rec + 12), offset = le32(rec + 16);
    uint64_t end = eocd;

    if (eocd >= 20) {
        unsigned char loc[20];
        st = read_at(r, eocd - 20, loc, sizeof loc);
        if (st != CSAE_OK)
            return st;
        if (le32(loc) == SIG_LOCATOR64) {
            if (le32(loc + 4) != 0 || le32(loc + 16) != 1)
                return CSAE_ERR_FORMAT;
            /* The zip64 record right before its locator, where the locator
             * points and without extensible data: zipfile reads it there
             * whatever the locator says, other readers where the locator
             * points, so any other layout could show them two
             * directories. */
            const uint64_t at = le64(loc + 8);
            if (eocd < 20 + 56 || at != eocd - 20 - 56)
                return CSAE_ERR_FORMAT;
            st = read_at(r, at, rec, 56);
            if (st != CSAE_OK)
                return st;
            if (le32(rec) != SIG_EOCD64 || le64(rec + 4) != 44 || le32(rec + 16) != 0
                || le32(rec + 20) != 0 || le64(rec + 24) != le64(rec + 32))
                return CSAE_ERR_FORMAT;
            n = le64(rec + 32);
            size = le64(rec + 40);
            offset = le64(rec + 48);
            end = at;
        }
    }
    /* The directory ends where the end records begin: no gap, no overlap. */
    if (offset > end || size != end - offset)
        return CSAE_ERR_FORMAT;
    *cd_offset = offset;
    *cd_end = end;
    *entries = n;
    return CSAE_OK;
}

/* Replace the 0xFFFFFFFF sizes and offset of a central entry by the values
 * of its zip64 extra field (in the order usize, csize, offset). */
static csae_status zip64_extra(const unsigned char *extra, size_t len, uint64_t *usize,
                               uint64_t *csize, uint64_t *offset)
{
    size_t i = 0;
    while (i + 4 <= len) {
        const uint32_t id = le16(extra + i), n = le16(extra + i + 2);
        if (n > len - i - 4)
            return CSAE_ERR_FORMAT;
        if (id == 0x0001) {
            const unsigned char *p = extra + i + 4;
            size_t left = n;
            uint64_t *fields[3] = {usize, csize, offset};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xFFFFFFFFu)
                    continue;
                if (left < 8)
                    return CSAE_ERR_FORMAT;
                *fields[k] = le64(p);
                p += 8;
                left -= 8;
            }
            return CSAE_OK;
        }
        i += 4 + (size_t)n;
    }
    return (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *offset == 0xFFFFFFFFu)
               ? CSAE_ERR_FORMAT : CSAE_OK;
}

/* Every central-directory entry: a unique name (names not asked for set
 * *unknown), stored without encryption, its local header consistent, its
 * data inside the area before the directory and apart from the others. */
csae_status csae_npz_directory(const npz_file *r, const char *const *names, size_t count,
                               npz_member *members, int *unknown)
{
    return csae_npz_directory_max(r, names, count, members, unknown, CSAE_NPZ_MAX_ENTRIES);
}

csae_status csae_npz_directory_max(const npz_file *r, const char *const *names, size_t count,
                                   npz_member *members, int *unknown, uint64_t max_entries)
{
    uint64_t pos, cd_end, entries;
    csae_status st = central_directory(r, &pos, &cd_end, &entries);
    if (st != CSAE_OK)
        return st;
    const uint64_t cd_offset = pos;
    if (entries > max_entries)
        return CSAE_ERR_FORMAT;
    memset(members, 0, sizeof(npz_member) * count);
    *unknown = 0;
    unsigned char buf[CSAE_NPZ_BUF];
    for (uint64_t e = 0; e < entries; e++) {
        unsigned char h[46];
        if (cd_end - pos < sizeof h)
            return CSAE_ERR_FORMAT;
        st = read_at(r, pos, h, sizeof h);
        if (st != CSAE_OK)
            return st;
        if (le32(h) != SIG_CENTRAL)
            return CSAE_ERR_FORMAT;
        const uint32_t flags = le16(h + 8), method = le16(h + 10);
        const uint32_t nlen = le16(h + 28), xlen = le16(h + 30), clen = le16(h + 32);
        uint64_t csize = le32(h + 20), usize = le32(h + 24), offset = le32(h + 42);
        const uint64_t entry = 46u + (uint64_t)nlen + xlen + clen;
        if (cd_end - pos < entry || le16(h + 34) != 0)
            return CSAE_ERR_FORMAT;
        if (nlen > MAX_NAME || xlen > MAX_EXTRA)
            return CSAE_ERR_FORMAT;
        char name[MAX_NAME];
        st = read_at(r, pos + 46, buf, (size_t)nlen + xlen);
        if (st != CSAE_OK)
            return st;
        memcpy(name, buf, nlen);
        st = zip64_extra(buf + nlen, xlen, &usize, &csize, &offset);
        if (st != CSAE_OK)
            return st;
        pos += entry;

        size_t field = count;
        for (size_t f = 0; f < count; f++)
            if (strlen(names[f]) == nlen && memcmp(names[f], name, nlen) == 0)
                field = f;
        if (field == count) {
            *unknown = 1;
            continue;
        }
        npz_member *m = &members[field];
        if (m->present)
            return CSAE_ERR_FORMAT; /* the same name twice */
        /* "version needed to extract" above 6.3: zipfile refuses it too */
        if (unsupported_flags(flags) || method != 0 || h[6] > 63)
            return CSAE_ERR_UNSUPPORTED;
        if (csize != usize)
            return CSAE_ERR_FORMAT;

        /* The local header says what the central entry says (name, flags,
         * method, and CRC and sizes unless a data descriptor follows the
         * data): readers that trust one or the other must see one member. */
        unsigned char lh[30];
        if (offset > cd_offset || cd_offset - offset < sizeof lh)
            return CSAE_ERR_FORMAT;
        st = read_at(r, offset, lh, sizeof lh);
        if (st != CSAE_OK)
            return st;
        const uint32_t lxlen = le16(lh + 28);
        if (le32(lh) != SIG_LOCAL || le16(lh + 26) != nlen || le16(lh + 8) != method)
            return CSAE_ERR_FORMAT;
        if (unsupported_flags(le16(lh + 6)))
            return CSAE_ERR_UNSUPPORTED;
        if (le16(lh + 6) != flags || lxlen > MAX_EXTRA)
            return CSAE_ERR_FORMAT;
        const uint64_t data = offset + 30 + nlen + lxlen;
        if (data > cd_offset || usize > cd_offset - data)
            return CSAE_ERR_FORMAT;
        st = read_at(r, offset + 30, buf, (size_t)nlen + lxlen);
        if (st != CSAE_OK)
            return st;
        if (memcmp(buf, name, nlen) != 0)
            return CSAE_ERR_FORMAT;
        if ((flags & 0x08u) == 0) {
            uint64_t lusize = le32(lh + 22), lcsize = le32(lh + 18), unused = 0;
            st = zip64_extra(buf + nlen, lxlen, &lusize, &lcsize, &unused);
            if (st != CSAE_OK)
                return st;
            if (le32(lh + 14) != le32(h + 16) || lusize != usize || lcsize != csize)
                return CSAE_ERR_FORMAT;
        }
        m->present = 1;
        m->offset = offset;
        m->data = data;
        m->size = usize;
        m->crc = le32(h + 16);
    }
    if (pos != cd_end)
        return CSAE_ERR_FORMAT;
    /* Members must not share bytes (an archive whose entries overlap is
     * crafted, never written by zipfile). */
    for (size_t a = 0; a < count; a++)
        for (size_t b = a + 1; b < count; b++) {
            const npz_member *x = &members[a], *y = &members[b];
            if (x->present && y->present && x->offset < y->data + y->size
                && y->offset < x->data + x->size)
                return CSAE_ERR_FORMAT;
        }
    return CSAE_OK;
}

/* ---- .npy headers ------------------------------------------------------- */


void csae_text_space(text_cursor *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n'
                           || c->s[c->i] == '\r'))
        c->i++;
}

int csae_text_char(text_cursor *c, char ch)
{
    csae_text_space(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return 1;
    }
    return 0;
}

int csae_text_word(text_cursor *c, const char *word)
{
    csae_text_space(c);
    const size_t len = strlen(word);
    if (c->n - c->i >= len && memcmp(c->s + c->i, word, len) == 0) {
        c->i += len;
        return 1;
    }
    return 0;
}

/* Decimal digits into *v (at least one; 0 on overflow or none). */
int csae_text_u64(text_cursor *c, uint64_t *v)
{
    csae_text_space(c);
    size_t digits = 0;
    uint64_t x = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        const uint64_t d = (uint64_t)(c->s[c->i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
        c->i++;
        digits++;
    }
    *v = x;
    return digits > 0;
}

/* A Python string literal ('...' or "...") of printable ASCII into out. */
static int take_quoted(text_cursor *c, char *out, size_t cap)
{
    csae_text_space(c);
    if (c->i >= c->n || (c->s[c->i] != '\'' && c->s[c->i] != '"'))
        return 0;
    const char quote = c->s[c->i++];
    size_t len = 0;
    while (c->i < c->n && c->s[c->i] != quote) {
        const char ch = c->s[c->i++];
        if (ch < 0x20 || ch > 0x7e || ch == '\\' || len + 1 >= cap)
            return 0;
        out[len++] = ch;
    }
    if (c->i >= c->n)
        return 0;
    c->i++;
    out[len] = '\0';
    return 1;
}

/* numpy's descr string: byte order, kind, size. */
static int parse_descr(const char *d, npy_array *a)
{
    const int little = host_is_little_endian();
    if (strlen(d) < 3)
        return 0;
    const char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return 0;
    const char kind = d[1];
    text_cursor c = {d + 2, strlen(d + 2), 0};
    uint64_t size;
    if (!csae_text_u64(&c, &size) || c.i != c.n || d[2] == ' ')
        return 0;
    if (kind == 'f') {
        if (size != 4 && size != 8)
            return 0;
    } else if (kind == 'i' || kind == 'u') {
        if (size != 1 && size != 2 && size != 4 && size != 8)
            return 0;
    } else if (kind == 'U') {
        if (!checked_mul_u64(size, 4, &size))
            return 0;
    } else {
        return 0;
    }
    /* '|' (no order) only for one-byte items, as numpy writes it */
    if (order == '|' && !(kind != 'U' && size == 1))
        return 0;
    a->kind = kind;
    a->itemsize = size;
    a->swap = (order == '<' && !little) || (order == '>' && little);
    return 1;
}

/* The header dict: {'descr': ..., 'fortran_order': ..., 'shape': (...), }
 * with the three keys once each, in any order. */
static csae_status parse_npy_dict(const char *text, size_t len, npy_array *a, int *fortran)
{
    text_cursor c = {text, len, 0};
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    if (!csae_text_char(&c, '{'))
        return CSAE_ERR_FORMAT;
    for (;;) {
        if (csae_text_char(&c, '}'))
            break;
        char key[16], value[32];
        if (!take_quoted(&c, key, sizeof key) || !csae_text_char(&c, ':'))
            return CSAE_ERR_FORMAT;
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if (!take_quoted(&c, value, sizeof value) || !parse_descr(value, a))
                return CSAE_ERR_FORMAT;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
            seen_order = 1;
            if (csae_text_word(&c, "True"))
                *fortran = 1;
            else if (csae_text_word(&c, "False"))
                *fortran = 0;
            else
                return CSAE_ERR_FORMAT;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if (!csae_text_char(&c, '('))
                return CSAE_ERR_FORMAT;
            a->ndim = 0;
            int trailing_comma = 0;
            while (!csae_text_char(&c, ')')) {
                uint64_t dim;
                if (a->ndim == 2 || !csae_text_u64(&c, &dim))
                    return CSAE_ERR_FORMAT;
                a->shape[a->ndim++] = dim;
                trailing_comma = csae_text_char(&c, ',');
                csae_text_space(&c);
                if (!trailing_comma && (c.i >= c.n || c.s[c.i] != ')'))
                    return CSAE_ERR_FORMAT;
            }
            if (a->ndim == 1 && !trailing_comma) /* (3) is an int, not a tuple */
                return CSAE_ERR_FORMAT;
        } else {
            return CSAE_ERR_FORMAT;
        }
        if (!csae_text_char(&c, ',')) {
            if (!csae_text_char(&c, '}'))
                return CSAE_ERR_FORMAT;
            break;
        }
    }
    csae_text_space(&c);
    if (c.i != c.n || !seen_descr || !seen_order || !seen_shape)
        return CSAE_ERR_FORMAT;
    return CSAE_OK;
}

/* Parse member m's .npy header into m->array: a known version, a header
 * that fits the buffer, and exactly shape x itemsize bytes after it. */
csae_status csae_npy_read_header(const npz_file *r, npz_member *m)
{
    char text[CSAE_NPZ_BUF];
    unsigned char pre[12];
    if (m->size < 10)
        return CSAE_ERR_FORMAT;
    csae_status st = read_at(r, m->data, pre, m->size < 12 ? 10 : 12);
    if (st != CSAE_OK)
        return st;
    if (memcmp(pre, "\x93NUMPY", 6) != 0 || pre[7] != 0)
        return CSAE_ERR_FORMAT;
    uint64_t prefix, hlen;
    if (pre[6] == 1) {
        prefix = 10;
        hlen = le16(pre + 8);
    } else if (pre[6] == 2 && m->size >= 12) {
        prefix = 12;
        hlen = le32(pre + 8);
    } else {
        return CSAE_ERR_FORMAT; /* version 3 (UTF-8 headers) is never written by csae */
    }
    if (hlen > sizeof text || hlen > m->size - prefix)
        return CSAE_ERR_FORMAT;
    st = read_at(r, m->data + prefix, text, (size_t)hlen);
    if (st != CSAE_OK)
        return st;
    npy_array *a = &m->array;
    memset(a, 0, sizeof *a);
    int fortran = 0;
    st = parse_npy_dict(text, (size_t)hlen, a, &fortran);
    if (st != CSAE_OK)
        return st;
    uint64_t count = 1, bytes;
    for (int d = 0; d < a->ndim; d++)
        if (!checked_mul_u64(count, a->shape[d], &count))
            return CSAE_ERR_FORMAT;
    if (!checked_mul_u64(count, a->itemsize, &bytes) || bytes != m->size - prefix - hlen)
        return CSAE_ERR_FORMAT;
    /* A Fortran-ordered matrix would need a transposing copy; csae writes
     * C order only (one row or one column reads the same either way). */
    if (fortran && a->ndim == 2 && a->shape[0] > 1 && a->shape[1] > 1)
        return CSAE_ERR_UNSUPPORTED;
    a->count = count;
    a->payload = m->data + prefix + hlen;
    return CSAE_OK;
}

/* ---- Streaming a member's elements -------------------------------------- */


/* Read member m whole (CRC-32 over all of it) and hand its elements to fn
 * in chunks of whole units. */
csae_status csae_npz_stream(const npz_file *r, const npz_member *m, size_t unit,
                                 npz_consume_fn fn, void *ctx)
{
    unsigned char buf[CSAE_NPZ_BUF];
    uint32_t crc = 0xFFFFFFFFu;
    uint64_t pos = m->data;
    const uint64_t end = m->data + m->size;
    while (pos < m->array.payload) {
        const size_t n = (size_t)(m->array.payload - pos < CSAE_NPZ_BUF ? m->array.payload - pos
                                                                    : CSAE_NPZ_BUF);
        csae_status st = read_at(r, pos, buf, n);
        if (st != CSAE_OK)
            return st;
        crc = crc_update(crc, buf, n);
        pos += n;
    }
    const size_t chunk = CSAE_NPZ_BUF / unit * unit;
    while (pos < end) {
        const size_t n = (size_t)(end - pos < chunk ? end - pos : chunk);
        csae_status st = read_at(r, pos, buf, n);
        if (st != CSAE_OK)
            return st;
        crc = crc_update(crc, buf, n);
        st = fn(ctx, buf, n);
        if (st != CSAE_OK)
            return st;
        pos += n;
    }
    return (crc ^ 0xFFFFFFFFu) == m->crc ? CSAE_OK : CSAE_ERR_FORMAT;
}

void csae_npz_close(npz_file *f)
{
    file_close(f->fd);
    f->fd = -1;
}

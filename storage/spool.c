/* The outage spool file (see spool.h). */
#include "storage/spool.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char magic[8] = {'C', 'V', 'S', 'P', 'O', 'O', 'L', '1'};

struct spool {
    int fd;
    char *path;
    uint64_t max_bytes;
    uint64_t head; /* first record not committed */
    uint64_t end;  /* end of the last complete record */
    size_t pending;
};

/* Little-endian integers of n bytes in the file's headers. */
static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t crc(const void *data, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)len);
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -ENOENT;
        done += (size_t)n;
    }
    return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

static int write_header(spool_t *sp, uint64_t head)
{
    unsigned char h[SPOOL_HEADER_SIZE];
    memcpy(h, magic, sizeof(magic));
    put_le(h + 8, head, 8);
    return full_pwrite(sp->fd, h, sizeof(h), 0);
}

/* Walks the records from head; sets end to the end of the last whole one, counts them, and says
 * where a torn one starts (0 when none). */
static uint64_t scan(spool_t *sp, uint64_t size)
{
    uint64_t off = sp->head;
    char *buf = NULL;
    size_t cap = 0;
    sp->pending = 0;
    while (off < size) {
        unsigned char rh[8];
        if (size - off < sizeof(rh) || full_pread(sp->fd, rh, sizeof(rh), off) < 0)
            break;
        uint32_t len = (uint32_t)get_le(rh, 4), sum = (uint32_t)get_le(rh + 4, 4);
        if (len == 0 || len > SPOOL_RECORD_MAX || len > size - off - sizeof(rh))
            break;
        if (len > cap) {
            cap = len;
            buf = cv_realloc(buf, cap);
        }
        if (full_pread(sp->fd, buf, len, off + sizeof(rh)) < 0 || crc(buf, len) != sum)
            break;
        off += sizeof(rh) + len;
        sp->pending++;
    }
    free(buf);
    sp->end = off;
    return off < size ? off : 0;
}

int spool_open(const char *path, uint64_t max_bytes, spool_t **out)
{
    int rc = cv_mkdir_parent(path, 0750);
    if (rc < 0) {
        cv_error("store", "cannot create the directory of the spool %s: %s", path, strerror(-rc));
        return rc;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
        cv_error("store", "cannot open the spool %s: %s", path, strerror(errno));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        cv_error("store",
                 "the spool %s is in use by another process (%s): give each daemon its "
                 "own storage.spool_dir",
                 path, strerror(errno));
        close(fd);
        return rc;
    }
    spool_t *sp = cv_calloc(1, sizeof(*sp));
    sp->fd = fd;
    sp->path = cv_strdup(path);
    sp->max_bytes = max_bytes;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char h[SPOOL_HEADER_SIZE];
    if (size < SPOOL_HEADER_SIZE) {
        /* new (or cut before its header was complete: it held no record) */
        if ((rc = write_header(sp, SPOOL_HEADER_SIZE)) < 0 ||
            ftruncate(fd, SPOOL_HEADER_SIZE) != 0 || fdatasync(fd) != 0) {
            rc = rc < 0 ? rc : -errno;
            goto fail;
        }
        sp->head = sp->end = SPOOL_HEADER_SIZE;
        *out = sp;
        return 0;
    }
    if ((rc = full_pread(fd, h, sizeof(h), 0)) < 0)
        goto fail;
    if (memcmp(h, magic, sizeof(magic)) != 0) {
        cv_error("store", "%s is not a cronvisor spool file (wrong header): move it away", path);
        rc = -EINVAL;
        goto fail;
    }
    sp->head = get_le(h + 8, 8);
    if (sp->head < SPOOL_HEADER_SIZE || sp->head > size) {
        cv_warn("store", "spool %s: committed offset %llu out of range; replaying every record",
                path, (unsigned long long)sp->head);
        sp->head = SPOOL_HEADER_SIZE;
    }
    uint64_t torn = scan(sp, size);
    if (torn) {
        cv_warn("store",
                "spool %s: the record at offset %llu is incomplete or corrupt (a crash during a "
                "write?): ignoring the last %llu byte(s)",
                path, (unsigned long long)torn, (unsigned long long)(size - torn));
        if (ftruncate(fd, (off_t)torn) != 0 || fdatasync(fd) != 0) {
            rc = -errno;
            goto fail;
        }
    }
    *out = sp;
    return 0;
fail:
    if (rc != -EINVAL)
        cv_error("store", "cannot use the spool %s: %s", path, strerror(-rc));
    spool_close(sp);
    return rc;
}

void spool_close(spool_t *sp)
{
    if (sp == NULL)
        return;
    close(sp->fd); /* releases the lock */
    free(sp->path);
    free(sp);
}

int spool_append(spool_t *sp, const void *data, size_t len)
{
    if (len == 0 || len > SPOOL_RECORD_MAX)
        return -EMSGSIZE;
    uint64_t need = 8 + (uint64_t)len;
    if (sp->max_bytes > 0 && sp->end + need > sp->max_bytes)
        return -ENOSPC;
    unsigned char *rec = cv_malloc(need);
    put_le(rec, len, 4);
    put_le(rec + 4, crc(data, len), 4);
    memcpy(rec + 8, data, len);
    int rc = full_pwrite(sp->fd, rec, need, sp->end);
    free(rec);
    if (rc < 0) {
        if (ftruncate(sp->fd, (off_t)sp->end) != 0)
            cv_warn("store", "spool %s: cannot cut a failed write: %s", sp->path, strerror(errno));
        return rc == -ENOSPC ? -ENOSPC : -EIO;
    }
    sp->end += need;
    sp->pending++;
    return 0;
}

int spool_sync(spool_t *sp)
{
    return fdatasync(sp->fd) == 0 ? 0 : -EIO;
}

size_t spool_pending(const spool_t *sp)
{
    return sp->pending;
}

uint64_t spool_bytes(const spool_t *sp)
{
    return sp->end;
}

uint64_t spool_head(const spool_t *sp)
{
    return sp->head;
}

uint64_t spool_end(const spool_t *sp)
{
    return sp->end;
}

const char *spool_path(const spool_t *sp)
{
    return sp->path;
}

int spool_read(spool_t *sp, uint64_t off, char **data, size_t *len, uint64_t *next)
{
    unsigned char rh[8];
    if (off >= sp->end)
        return -ENOENT;
    if (full_pread(sp->fd, rh, sizeof(rh), off) < 0)
        return -EIO;
    uint32_t n = (uint32_t)get_le(rh, 4);
    if (n == 0 || off + 8 + n > sp->end)
        return -EIO;
    char *buf = cv_malloc((size_t)n + 1);
    if (full_pread(sp->fd, buf, n, off + 8) < 0 || crc(buf, n) != (uint32_t)get_le(rh + 4, 4)) {
        free(buf);
        return -EIO;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    *next = off + 8 + n;
    return 0;
}

int spool_commit(spool_t *sp, uint64_t upto, size_t n)
{
    if (upto > sp->end || upto < sp->head)
        return -EINVAL;
    sp->pending = n > sp->pending ? 0 : sp->pending - n;
    if (upto == sp->end) {
        /* everything is in the database: start over */
        if (write_header(sp, SPOOL_HEADER_SIZE) < 0 || ftruncate(sp->fd, SPOOL_HEADER_SIZE) != 0 ||
            fdatasync(sp->fd) != 0)
            return -EIO;
        sp->head = sp->end = SPOOL_HEADER_SIZE;
        sp->pending = 0;
        return 0;
    }
    if (write_header(sp, upto) < 0 || fdatasync(sp->fd) != 0)
        return -EIO;
    sp->head = upto;
    return 0;
}

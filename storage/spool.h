/* The outage spool: an append-only file of records that could not reach the database yet.
 *
 * Layout: a 16-byte header ("CVSPOOL1", then the offset of the first record not yet committed to
 * the database, little-endian u64), then records, each a 4-byte length, a 4-byte CRC-32 of the
 * payload and the payload. Appends go to the end with write(2); spool_sync makes them durable
 * (fdatasync), so a caller appends a batch and syncs once. Records are read back in order from the
 * committed offset; spool_commit moves that offset forward (one pwrite + fdatasync) or, once every
 * record is committed, truncates the file back to its header.
 *
 * Crash safety: a record whose length runs past the end of the file, a zero length or a CRC that
 * does not match is a torn write from a crash; spool_open logs a warning and cuts the file there
 * (nothing after a torn record was ever reported durable, since appends are sequential). The file
 * is locked (flock) so that two daemons cannot share it.
 *
 * Synchronous and single-threaded: every call blocks on the file (a few ms for a sync). */
#ifndef CV_STORAGE_SPOOL_H
#define CV_STORAGE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_HEADER_SIZE 16
#define SPOOL_RECORD_MAX  (64u * 1024 * 1024) /* one record's payload */

typedef struct spool spool_t;

/** Opens (creating it and its directory when missing) the spool file at path, locks it, checks
 * the header and scans the records after the committed offset, cutting a torn tail. max_bytes
 * bounds the file (0: no bound). Returns 0 and *out, or a negative errno with the reason logged
 * (-EBUSY: another process holds the lock; -EINVAL: not a spool file). */
int spool_open(const char *path, uint64_t max_bytes, spool_t **out);
void spool_close(spool_t *sp);

/** Appends one record (not yet durable: see spool_sync). -ENOSPC when the file would grow past
 * max_bytes, -EMSGSIZE for a record over SPOOL_RECORD_MAX, -EIO on a write error (the partial
 * record is cut off again). Nothing is appended on failure. */
int spool_append(spool_t *sp, const void *data, size_t len);
/** Makes every append durable. 0 or -EIO. */
int spool_sync(spool_t *sp);

/** Records appended and not yet committed. */
size_t spool_pending(const spool_t *sp);
/** Current size of the file in bytes. */
uint64_t spool_bytes(const spool_t *sp);
/** The offset of the first record not yet committed (== spool_end when none). */
uint64_t spool_head(const spool_t *sp);
uint64_t spool_end(const spool_t *sp);
const char *spool_path(const spool_t *sp);

/** Reads the record at offset off (from spool_head, or a previous *next): *data is a heap copy,
 * NUL-terminated, of *len bytes; *next the offset after it. Returns 0, -ENOENT at the end, or
 * -EIO. */
int spool_read(spool_t *sp, uint64_t off, char **data, size_t *len, uint64_t *next);

/** The records before offset upto (n of them) reached the database: moves the committed offset
 * (durably), or truncates the file to its header when upto is the end. 0 or -EIO. */
int spool_commit(spool_t *sp, uint64_t upto, size_t n);

#endif

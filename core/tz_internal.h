/* Private to core/tz.c and its tests and fuzzers: parsing TZif bytes without the file system. */
#ifndef CV_CORE_TZ_INTERNAL_H
#define CV_CORE_TZ_INTERNAL_H

#include "core/tz.h"

/** Parses TZif bytes into a new zone named `name`, outside the cache (free with tz__free).
 * Returns NULL with a sentence in err on corrupt or unsupported data. */
tz_zone_t *tz__parse(const char *name, const void *data, size_t len, char *err, size_t errlen);

/** Frees a zone from tz__parse. */
void tz__free(tz_zone_t *z);

#endif

/* libFuzzer driver for the TZif reader and its POSIX TZ footer. Arbitrary bytes are parsed as a
 * TZif file; an accepted zone must give offsets within +-26 h, transitions that really change the
 * offset (and nothing in between), and wall-clock times that map back to the instants that show
 * them (the first or last of the instants reported is t, or t lies between). See
 * tests/fuzz/README.md. */
#include "core/tz_internal.h"
#include "core/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static void check_instant(const tz_zone_t *z, int64_t t)
{
    int o = tz_offset_at(z, t);
    if (o > 26 * 3600 || o < -26 * 3600)
        abort();
    int64_t e = tz_next_transition(z, t);
    if (e <= t)
        abort();
    if (e != INT64_MAX && (tz_offset_at(z, e - 1) != o || tz_offset_at(z, e) == o))
        abort();
    tz_local_t r;
    int rc = tz_local_to_utc(z, t + o, &r);
    if (rc == -ERANGE && (t > INT64_C(3100000000000) || t < -INT64_C(3100000000000)))
        return; /* beyond the years +-100000 */
    if (rc != 0 || r.kind == TZ_LOCAL_GAP || t < r.first || t > r.second)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tz_zone_t *z = tz__parse("fuzz", data, size, err, sizeof(err));
    if (!z) {
        if (!err[0])
            abort();
        return 0;
    }
    uint64_t h = cv_hash64(data, size);
    int64_t t = -INT64_C(2208988800); /* 1900 */
    for (int i = 0; i < 40; i++) {
        check_instant(z, t);
        t += 86400 * 3 + (int64_t)(h % 86400) + i * 7919; /* about 1900 to 2230 */
        h = h * 6364136223846793005u + 1;
    }
    int64_t e = 1767225600; /* 2026: walk ten transitions */
    for (int i = 0; i < 10 && e != INT64_MAX; i++) {
        check_instant(z, e);
        e = tz_next_transition(z, e);
    }
    tz__free(z);
    return 0;
}

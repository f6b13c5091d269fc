/* units.c — see units.h. */
#include "cellstate/units.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Length of the decimal number at the start of s ([+-] digits [. digits]
 * [e[+-]digits]), 0 if none. Stricter than strtod, which also takes hex,
 * "inf", "nan" and leading blanks. */
size_t cs_scan_decimal(const char *s, bool sign)
{
    size_t i = 0, digits = 0;
    if (sign && (s[i] == '+' || s[i] == '-'))
        i++;
    while (isdigit((unsigned char)s[i]))
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (isdigit((unsigned char)s[j])) {
            while (isdigit((unsigned char)s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

int cs_duration_parse_ms(const char *text, uint32_t *out, cs_error *err)
{
    size_t n = cs_scan_decimal(text, true);
    double ms = 0;
    if (n > 0 && text[n] == '\0') {
        ms = strtod(text, NULL) * 1000.0;
    } else {
        const char *p = text;
        if (*p == '\0')
            return cs_errorf(err, CS_EINVAL, "an empty duration");
        while (*p) {
            n = cs_scan_decimal(p, p == text);
            if (n == 0)
                goto bad;
            double x = strtod(p, NULL);
            p += n;
            if (strncmp(p, "ms", 2) == 0)
                ms += x, p += 2;
            else if (*p == 's')
                ms += x * 1000.0, p++;
            else if (*p == 'm')
                ms += x * 60000.0, p++;
            else if (*p == 'h')
                ms += x * 3600000.0, p++;
            else
                goto bad;
        }
    }
    if (!(ms >= 0))
        return cs_errorf(err, CS_EINVAL, "duration '%.64s' is negative", text);
    ms = round(ms);
    if (ms > (double)UINT32_MAX)
        return cs_errorf(err, CS_EINVAL, "duration '%.64s' is longer than %u ms (about 49 days)",
                         text, UINT32_MAX);
    *out = (uint32_t)ms;
    return CS_OK;
bad:
    return cs_errorf(err, CS_EINVAL,
                     "'%.64s' is not a duration (seconds as a number, or 500ms, 30s, 1m30s, 2h)",
                     text);
}

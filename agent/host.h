/* host.h — what this machine offers the cell: its name and its capacity
 * (cpu cores, memory, disk), detected from the host when the operator does
 * not give them on the command line.
 *
 * The parsing helpers take text rather than reading files themselves, so
 * that the arithmetic can be checked without the host's real /proc.
 */
#ifndef AG_HOST_H
#define AG_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

/* The host name into out[0..size). CS_EIO when gethostname fails. */
int ag_host_name(char *out, size_t size, cs_error *err);

/* MemTotal from the text of /proc/meminfo, in MiB. CS_EINVAL when the text
 * has no well-formed MemTotal line. `text` is borrowed. */
int ag_host_meminfo_mib(const char *text, int64_t *mib, cs_error *err);

/* The host's capacity: cpu = online CPUs x 1000 millicores, memory from
 * /proc/meminfo (sysconf pages when it cannot be read), disk = the size of
 * the file system holding `dir` (statvfs). Any of them that cannot be
 * detected is an error naming it. */
int ag_host_capacity(const char *dir, cs_res *out, cs_error *err);

/* Parse a cpu amount in cores, possibly fractional ("2", "0.5", "1.25"),
 * into millicores (at most three decimals). CS_EINVAL otherwise. */
int ag_host_parse_cores(const char *text, int64_t *millicores, cs_error *err);

#endif

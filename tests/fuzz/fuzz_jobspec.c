/* fuzz_jobspec.c — a job spec file as `cellctl submit` reads it
 * (cs_jobspec_parse, spec/jobspec.h): native JSON or a Marathon app, told
 * apart by its fields; fuzz_marathon runs the same parser from Marathon
 * seeds. A spec it accepts must come back through its native JSON
 * (cs_jobspec_to_json, what `cellctl describe` prints) as the same
 * job.submit body, as jobspec.h promises. */
#include <jansson.h>

#include "spec/jobspec.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_jobspec s, back;
    cs_error err = {0};
    if (cs_jobspec_parse((const char *)data, size, &s, &err) == CS_OK) {
        json_t *j = NULL;
        fz_require(cs_jobspec_to_json(&s.job, &s.opts, &j, &err) == CS_OK,
                   "an accepted spec has a native JSON");
        fz_require(cs_jobspec_from_json(j, &back, &err) == CS_OK,
                   "the native JSON of an accepted spec is accepted");
        fz_require_same(&back.body, &s.body, "the native JSON gives the same job.submit body");
        json_decref(j);
        cs_jobspec_free(&back);
    }
    cs_jobspec_free(&s);
    return 0;
}

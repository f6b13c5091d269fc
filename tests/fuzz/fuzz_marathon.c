/* fuzz_marathon.c — Marathon apps as `cellctl submit` reads them: the same
 * parser and properties as fuzz_jobspec (one source, included), started
 * from Marathon seeds (tests/fuzz/corpus/marathon: the apps of
 * ../shared/testdata and examples/), so that the fuzzer begins inside the
 * Marathon half of the parser. */
#include "tests/fuzz/fuzz_jobspec.c"

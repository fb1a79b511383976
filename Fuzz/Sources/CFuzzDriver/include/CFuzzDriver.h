// libFuzzer's driver entry (compiler-rt FuzzerInterface.h / FuzzerDriver.cpp): runs the fuzzing
// loop with `callback` as the target, taking libFuzzer's usual command-line flags from argv.
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

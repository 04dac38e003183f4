#ifndef RUNVOY_FUZZ_DRIVER_H
#define RUNVOY_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for a program that has a main of its own (LLVM 12 and later): parses libFuzzer's
/// options from argc/argv and runs `callback` on every input. Only linked into the fuzz build
/// (`-sanitize=fuzzer`); the normal build never calls it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

// The declaration in include/fuzz_driver.h is all this module provides; SwiftPM wants one source file.
#include "fuzz_driver.h"

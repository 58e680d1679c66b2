// AVX-512 F/DQ/BW/VL (Skylake-SP, Zen 4 and later): 64-byte vectors, masked tails.
// Compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma (CMakeLists.txt).
#include <immintrin.h>
#define LOGITLOSS_VECTOR_BYTES 64
#define LOGITLOSS_TARGET_NAME "avx512"
#define LOGITLOSS_TABLE_ACCESSOR kernel_table_avx512
#include "arch/target.inc"

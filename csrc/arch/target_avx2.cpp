// AVX2 + FMA (Haswell and later): 32-byte vectors. Compiled with -mavx2 -mfma (CMakeLists.txt).
#include <immintrin.h>
#define LOGITLOSS_VECTOR_BYTES 32
#define LOGITLOSS_TARGET_NAME "avx2"
#define LOGITLOSS_TABLE_ACCESSOR kernel_table_avx2
#include "arch/target.inc"

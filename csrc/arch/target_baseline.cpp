// Portable baseline: 16-byte vectors (SSE2 on x86-64, Advanced SIMD on aarch64), no FMA.
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>  // SSE2 streaming stores
#endif
#define LOGITLOSS_VECTOR_BYTES 16
#define LOGITLOSS_TARGET_NAME "baseline"
#define LOGITLOSS_TABLE_ACCESSOR kernel_table_baseline
#include "arch/target.inc"

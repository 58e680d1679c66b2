// Portable baseline: 16-byte vectors (SSE2 on x86-64, Advanced SIMD on aarch64), no FMA.
#define LOGITLOSS_VECTOR_BYTES 16
#define LOGITLOSS_TARGET_NAME "baseline"
#define LOGITLOSS_TABLE_ACCESSOR kernel_table_baseline
#include "arch/target.inc"

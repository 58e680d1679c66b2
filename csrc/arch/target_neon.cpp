// aarch64 Advanced SIMD with fused multiply-add: 16-byte vectors.
#include <arm_neon.h>
#define LOGITLOSS_VECTOR_BYTES 16
#define LOGITLOSS_TARGET_NEON 1
#define LOGITLOSS_TARGET_NAME "neon"
#define LOGITLOSS_TABLE_ACCESSOR kernel_table_neon
#include "arch/target.inc"

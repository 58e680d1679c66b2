// What the running CPU and OS support, detected once without executing any instruction beyond
// the baseline (CPUID and XGETBV on x86-64, the auxiliary vector on aarch64 Linux).
#pragma once

namespace logitloss {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA, and the OS saves YMM state
  bool avx512 = false;    // AVX-512 F/DQ/BW/VL, and the OS saves ZMM and opmask state
  bool neon = false;      // aarch64 Advanced SIMD
};

const CpuFeatures& cpu_features();

}  // namespace logitloss

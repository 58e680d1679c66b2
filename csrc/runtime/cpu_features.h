// What the running CPU and OS support, detected once without executing any instruction beyond
// the baseline (CPUID and XGETBV on x86-64; nothing to detect on aarch64, where Advanced SIMD with
// its fused multiply-add is part of the base architecture every AArch64 OS and ABI requires).
#pragma once

namespace logitloss {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA, and the OS saves YMM state
  bool avx512 = false;    // AVX-512 F/DQ/BW/VL, and the OS saves ZMM and opmask state
  bool neon = false;      // aarch64 Advanced SIMD
};

const CpuFeatures& cpu_features();

}  // namespace logitloss

# Cross-compiling the extension for Linux aarch64 on an x86-64 machine (used by .ci/aarch64).
#
# LOGITLOSS_AARCH64_ROOT (environment) is a Debian arm64 root holding the target's Python: its
# headers for the build, its interpreter run under QEMU for CMake's FindPython queries (SOABI,
# include directory): with CMake policy CMP0190 set to NEW (on the command line,
# -DCMAKE_POLICY_DEFAULT_CMP0190=NEW: a toolchain file is read after cmake_minimum_required has set
# the policies) FindPython runs the interpreter through CMAKE_CROSSCOMPILING_EMULATOR.
# pybind11 is told it is cross-compiling, so it takes the module suffix from FindPython instead of
# executing the interpreter itself.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_SYSROOT "$ENV{LOGITLOSS_AARCH64_ROOT}")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L "$ENV{LOGITLOSS_AARCH64_ROOT}")
set(Python_EXECUTABLE "$ENV{LOGITLOSS_AARCH64_ROOT}/usr/bin/python3")  # Debian python3-minimal's link
set(PYBIND11_USE_CROSSCOMPILING ON)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # pybind11's CMake files live in the host's venv

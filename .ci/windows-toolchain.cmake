# Configuring the extension for Windows x64 with Debian's MinGW-w64 cross compiler (used by
# .ci/windows, which compiles every object and links nothing: no Windows Python here to link to).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)  # the POSIX thread model: std::thread, std::mutex
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(PYBIND11_USE_CROSSCOMPILING ON)

/* pyconfig.h for compiling (not linking) against CPython's headers for Windows x64 with MinGW-w64
 * (.ci/windows): the C API headers are the same on every platform but for this file, and CPython's
 * own Windows one (PC/pyconfig.h) is not available on this machine. It states what the headers
 * need of the target: a Windows build (MS_WINDOWS: no POSIX headers), LLP64 type sizes (long is 32
 * bits), a DLL-imported API. */
#ifndef Py_CONFIG_H
#define Py_CONFIG_H

#define MS_WIN32
#define MS_WIN64
#define MS_WINDOWS
#define NT_THREADS
#define Py_ENABLE_SHARED 1
#define HAVE_DECLSPEC_DLL
#define PY_LONG_LONG long long

#define SIZEOF_SHORT 2
#define SIZEOF_INT 4
#define SIZEOF_LONG 4
#define SIZEOF_LONG_LONG 8
#define SIZEOF_FLOAT 4
#define SIZEOF_DOUBLE 8
#define SIZEOF_VOID_P 8
#define SIZEOF_SIZE_T 8
#define SIZEOF_TIME_T 8
#define SIZEOF_WCHAR_T 2
#define SIZEOF_OFF_T 4
#define SIZEOF_FPOS_T 8
#define SIZEOF__BOOL 1
#define ALIGNOF_SIZE_T 8
#define ALIGNOF_LONG 4
#define HAVE_SSIZE_T 1
#define DOUBLE_IS_LITTLE_ENDIAN_IEEE754 1

#define HAVE_STDDEF_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_WCHAR_H 1
#define HAVE_ERRNO_H 1
#define HAVE_SIGNAL_H 1

#endif

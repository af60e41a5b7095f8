# Locate the external building blocks; each failure names the Debian package
# that provides the missing piece (scripts/install-deps installs them all).
find_package(PkgConfig)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config'")
endif()

function(repeval_require_pc target module debpkg)
  pkg_check_modules(${target} IMPORTED_TARGET ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "${module} not found by pkg-config: install the Debian package '${debpkg}' "
                        "(or run scripts/install-deps; on a cluster, 'module load' the equivalent)")
  endif()
endfunction()

repeval_require_pc(REPEVAL_OPENBLAS openblas libopenblas-dev)
repeval_require_pc(REPEVAL_LAPACKE lapacke liblapacke-dev)
repeval_require_pc(REPEVAL_ZSTD libzstd libzstd-dev)
repeval_require_pc(REPEVAL_ARCHIVE libarchive libarchive-dev)
repeval_require_pc(REPEVAL_YAML yaml-0.1 libyaml-dev)
repeval_require_pc(REPEVAL_PNG libpng libpng-dev)
repeval_require_pc(REPEVAL_PCRE2 libpcre2-8 libpcre2-dev)
repeval_require_pc(REPEVAL_UTF8PROC libutf8proc libutf8proc-dev)

find_package(MPI COMPONENTS C)
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "MPI (C) not found: install the Debian packages 'libopenmpi-dev openmpi-bin' "
                      "(on a cluster: module load openmpi)")
endif()
find_program(REPEVAL_MPIEXEC NAMES mpiexec mpirun HINTS ${MPI_C_COMPILER_INCLUDE_DIRS}/../bin)
if(MPIEXEC_EXECUTABLE)
  set(REPEVAL_MPIEXEC ${MPIEXEC_EXECUTABLE})
endif()

# The forward engine's fast path: OpenMP threads for its kernels (GCC's libgomp) and
# SLEEF's vectorised exp/erf/tanh for GELU, SiLU and softmax (without it, libm lane by lane).
find_package(OpenMP COMPONENTS C)
if(NOT OpenMP_C_FOUND)
  message(WARNING "OpenMP not found: the forward engine's fast kernels run on one thread")
endif()
option(REPEVAL_SLEEF "Vectorised exp/erf/tanh from SLEEF in the forward engine (Debian: libsleef-dev)" ON)
if(REPEVAL_SLEEF)
  repeval_require_pc(REPEVAL_SLEEFLIB sleef libsleef-dev)
endif()

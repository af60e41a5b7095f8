# Compiler flags shared by every target of the project.
add_library(repeval_flags INTERFACE)
target_compile_options(repeval_flags INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wno-unused-parameter -Wvla -Wformat=2)
target_compile_definitions(repeval_flags INTERFACE _POSIX_C_SOURCE=200809L _FILE_OFFSET_BITS=64)
if(REPEVAL_WERROR)
  target_compile_options(repeval_flags INTERFACE -Werror)
endif()
if(REPEVAL_NATIVE)
  target_compile_options(repeval_flags INTERFACE -march=native)
endif()
if(REPEVAL_SANITIZE)
  target_compile_options(repeval_flags INTERFACE
    -fsanitize=${REPEVAL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(repeval_flags INTERFACE -fsanitize=${REPEVAL_SANITIZE})
endif()

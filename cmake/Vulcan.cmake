# Compiler flags and helpers shared by every target.

add_compile_options(-Wall -Wextra -Wstrict-prototypes -Wshadow -Wno-unused-parameter)
if(VK_WERROR)
    add_compile_options(-Werror)
endif()
if(VK_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
# ThreadSanitizer (make tsan): clang only, and not together with ASan, which uses the
# same shadow memory. -O1 keeps the tests fast enough while the reports keep their lines.
if(VK_TSAN)
    if(VK_SANITIZE)
        message(FATAL_ERROR "VK_TSAN and VK_SANITIZE are mutually exclusive")
    endif()
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
        message(FATAL_ERROR "VK_TSAN needs clang (-DCMAKE_C_COMPILER=clang)")
    endif()
    add_compile_options(-fsanitize=thread -O1 -g -fno-omit-frame-pointer
                        -mno-omit-leaf-frame-pointer)
    add_link_options(-fsanitize=thread)
endif()
if(VK_FUZZ)
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
endif()

# The environment every test runs in: where the sources and the build are.
set(VK_TEST_ENV "VK_SOURCE_DIR=${PROJECT_SOURCE_DIR};VK_BINARY_DIR=${PROJECT_BINARY_DIR};CMOCKA_MESSAGE_OUTPUT=stdout")

# vk_unit_test(NAME SOURCES...): a cmocka test binary registered with CTest.
function(vk_unit_test name)
    add_executable(${name} ${ARGN})
    target_link_libraries(${name} PRIVATE vulcan PkgConfig::CMOCKA)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests/unit)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT 300
        ENVIRONMENT "${VK_TEST_ENV}")
endfunction()

# ctest: the per-instruction-set builds of the CPU kernels (csrc/hashgrid/cpu_isa.h) must define no weak or
# unique symbols. The linker keeps one copy of such a symbol for the whole module, possibly the AVX-512 one,
# and the baseline build would then run AVX-512 code on a CPU without it. Run as
#   cmake -DNM=<nm> -DOBJECTS=<a;b;...> -P check_isa_objects.cmake
# DW.ref.__gxx_personality_v0 (a pointer to the C++ runtime's exception personality routine) holds no code.
foreach(obj IN LISTS OBJECTS)
  execute_process(COMMAND ${NM} -C ${obj} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${obj}")
  endif()
  string(REPLACE "\n" ";" lines "${syms}")
  foreach(line IN LISTS lines)
    if(line MATCHES " [WVu] " AND NOT line MATCHES "DW\\.ref\\.__gxx_personality_v0")
      message(FATAL_ERROR "${obj} defines a weak symbol shared across CPU builds: ${line}")
    endif()
  endforeach()
endforeach()
message(STATUS "checked ${OBJECTS}")

# Writes stitch's shell completion and man page into OUT (a folder), by
# running the built binary STITCH: `completion bash`, `completion zsh`,
# `manpage`. Run by tools/stitch/CMakeLists.txt after each build of stitch.
foreach(pair "stitch.bash;completion;bash" "_stitch;completion;zsh" "stitch.1;manpage")
  list(POP_FRONT pair file)
  execute_process(COMMAND ${STITCH} ${pair} OUTPUT_FILE ${OUT}/${file}.new
                  RESULT_VARIABLE status ERROR_VARIABLE errors)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "stitch ${pair} failed (${status}): ${errors}")
  endif()
  file(RENAME ${OUT}/${file}.new ${OUT}/${file})
endforeach()

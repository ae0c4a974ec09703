# CPack pre-build script: removes from the uffdkit package's staging tree
# what only uffdkit-dev may ship (CPACK_UFFDKIT_RUNTIME_PRUNE, absolute
# install paths), and the directories that leaves empty.
set(root ${CPACK_TEMPORARY_DIRECTORY}/Unspecified)
foreach(path ${CPACK_UFFDKIT_RUNTIME_PRUNE})
  file(REMOVE_RECURSE ${root}${path})
  get_filename_component(dir ${root}${path} DIRECTORY)
  while(IS_DIRECTORY ${dir} AND NOT dir STREQUAL root)
    file(GLOB left ${dir}/*)
    if(left)
      break()
    endif()
    file(REMOVE_RECURSE ${dir})
    get_filename_component(dir ${dir} DIRECTORY)
  endwhile()
endforeach()

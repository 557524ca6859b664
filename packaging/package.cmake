# The Debian package, made by CPack's DEB generator from the install rules below (see
# scripts/package). CPack rather than a debian/ directory: the install rules are the one list
# of what goes where, for `cmake --install` and the .deb alike, and CPack runs dpkg-shlibdeps
# on them for Depends; a debian/ directory would repeat the list and add a debhelper build.

# --- install rules beyond the binary and the conf files (CMakeLists.txt) -----------------

# Man pages: flowtop.8 with every man/*.inc section pasted in before SEE ALSO (the sections
# of each subsystem live in their own file), gzipped as Debian wants (-9n: no timestamp).
file(GLOB FLOWTOP_MAN_INCLUDES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/man/*.8.inc)
set(FLOWTOP_MAN_OUT ${PROJECT_BINARY_DIR}/man)
add_custom_command(
  OUTPUT ${FLOWTOP_MAN_OUT}/flowtop.8.gz ${FLOWTOP_MAN_OUT}/flowtop-geoip-update.8.gz
  COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}/man/flowtop.8
          -DINCDIR=${PROJECT_SOURCE_DIR}/man -DOUT=${FLOWTOP_MAN_OUT}/flowtop.8
          -P ${PROJECT_SOURCE_DIR}/packaging/man.cmake
  COMMAND gzip -9nf ${FLOWTOP_MAN_OUT}/flowtop.8
  COMMAND gzip -9nc ${PROJECT_SOURCE_DIR}/man/flowtop-geoip-update.8
          > ${FLOWTOP_MAN_OUT}/flowtop-geoip-update.8.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/man/flowtop.8 ${FLOWTOP_MAN_INCLUDES}
          ${PROJECT_SOURCE_DIR}/man/flowtop-geoip-update.8 ${PROJECT_SOURCE_DIR}/packaging/man.cmake
  COMMENT "Man pages")
# The changelog names the package's version, so it is made from the project's.
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
configure_file(packaging/changelog.Debian.in ${PROJECT_BINARY_DIR}/changelog.Debian @ONLY)
add_custom_command(
  OUTPUT ${PROJECT_BINARY_DIR}/changelog.Debian.gz
  COMMAND gzip -9nc ${PROJECT_BINARY_DIR}/changelog.Debian > ${PROJECT_BINARY_DIR}/changelog.Debian.gz
  DEPENDS ${PROJECT_BINARY_DIR}/changelog.Debian)
add_custom_target(flowtop_docs ALL
  DEPENDS ${FLOWTOP_MAN_OUT}/flowtop.8.gz ${FLOWTOP_MAN_OUT}/flowtop-geoip-update.8.gz
          ${PROJECT_BINARY_DIR}/changelog.Debian.gz)

install(FILES ${FLOWTOP_MAN_OUT}/flowtop.8.gz ${FLOWTOP_MAN_OUT}/flowtop-geoip-update.8.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
# /etc/flowtop/flowtoprc for the /usr prefix (the package's; a conffile). Any other prefix
# keeps it under the prefix (<prefix>/etc/flowtop, an example only: flowtop reads /etc), so
# `cmake --install --prefix DIR` never writes outside DIR.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(FLOWTOP_SYSCONF_DEST /etc/flowtop)
else()
  set(FLOWTOP_SYSCONF_DEST ${CMAKE_INSTALL_SYSCONFDIR}/flowtop)
endif()
install(FILES packaging/flowtoprc DESTINATION ${FLOWTOP_SYSCONF_DEST})
install(FILES packaging/completions/flowtop.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME flowtop)
install(FILES packaging/completions/_flowtop DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
install(PROGRAMS packaging/flowtop-geoip-update DESTINATION ${CMAKE_INSTALL_SBINDIR})
# flowtop-geoip-update finds it at ../libexec/flowtop from its own directory.
install(TARGETS flowtop-asn-mmdb RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/flowtop)
install(FILES packaging/copyright ${PROJECT_BINARY_DIR}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES packaging/examples/flowtop-geoip-update.service
              packaging/examples/flowtop-geoip-update.timer packaging/examples/flowtop-geoip-update.cron
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The databases the package carries, so a fresh machine without npm has countries, cities and
# AS names (scripts/package fills the directory with scripts/install-geoip). Empty: none.
set(FLOWTOP_GEOIP_BUNDLE_DIR "" CACHE PATH "Directory of *.mmdb files to install into <share>/flowtop/geoip")
if(FLOWTOP_GEOIP_BUNDLE_DIR)
  file(GLOB FLOWTOP_BUNDLED_DBS ${FLOWTOP_GEOIP_BUNDLE_DIR}/*.mmdb)
  if(NOT FLOWTOP_BUNDLED_DBS)
    message(FATAL_ERROR "FLOWTOP_GEOIP_BUNDLE_DIR=${FLOWTOP_GEOIP_BUNDLE_DIR} holds no *.mmdb")
  endif()
  install(FILES ${FLOWTOP_BUNDLED_DBS} DESTINATION ${CMAKE_INSTALL_DATADIR}/flowtop/geoip)
endif()

# --- the package ---------------------------------------------------------------------------

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME flowtop)
set(CPACK_PACKAGE_VENDOR "flowtop developers")
set(CPACK_PACKAGE_CONTACT "flowtop developers <flowtop@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "top-like viewer of the kernel's connection tracking table")
# CPack writes the summary as the synopsis line and this as the extended description.
set(CPACK_PACKAGE_DESCRIPTION
    "flowtop shows, live and top-like, every connection netfilter conntrack knows:
who talks to whom, over which protocol, how many bytes and packets in each
direction and at what rate, with the local process, host names, services,
countries, cities and autonomous systems. Batch output as a table, JSON lines
or CSV; every network namespace at once with --all-netns.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends from the binaries' shared libraries (dpkg-shlibdeps), never a hand-written list.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "bash-completion")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "npm, geoipupdate")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/conffiles ${PROJECT_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# gzip: the bundled databases make xz take minutes on two cores for a few MB less.
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
include(CPack)

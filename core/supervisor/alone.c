/* Linked with the whole supervisor library and nothing it does not link
 * itself (supervisor/CMakeLists.txt): if the supervisor called into the
 * plugin host, this would not link. */
int main(void) {
  return 0;
}

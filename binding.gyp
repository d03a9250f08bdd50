{
  "targets": [
    {
      "target_name": "file_io",
      "sources": ["native/file-io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

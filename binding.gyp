{
  "targets": [
    {
      "target_name": "nowait_io",
      "sources": ["native/nowait-io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "zero_copy",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/zero_copy.c"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
          "defines": ["NAPI_VERSION=8"]
        }]
      ]
    }
  ]
}

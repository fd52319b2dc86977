;; counter: counts the messages it has handled and replies with the count as a msgpack
;; unsigned int (1, 2, 3, ...). Its count survives a hot reload through the ABI's state
;; hand-over: `snapshot` returns the count as 8 bytes little-endian, `restore` takes them back.
(module
  (memory (export "memory") 1 1)
  (global $count (mut i64) (i64.const 0))

  ;; Messages are ignored, so a fixed buffer at 1024 (up to 64512 bytes) is enough.
  (func (export "inbox") (param $size i32) (result i32)
    (if (result i32) (i32.le_u (local.get $size) (i32.const 64512))
      (then (i32.const 1024))
      (else (i32.const 0))))

  ;; Store the low $n bytes of $v big-endian at $at.
  (func $be (param $at i32) (param $v i64) (param $n i32)
    (loop $next
      (if (i32.gt_s (local.get $n) (i32.const 0))
        (then
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (i64.store8 (i32.add (local.get $at) (local.get $n)) (local.get $v))
          (local.set $v (i64.shr_u (local.get $v) (i64.const 8)))
          (br $next)))))

  ;; msgpack-encode the unsigned $v at address 16; returns the encoded length.
  (func $pack (param $v i64) (result i32)
    (if (i64.lt_u (local.get $v) (i64.const 128))
      (then (i64.store8 (i32.const 16) (local.get $v)) (return (i32.const 1))))
    (if (i64.lt_u (local.get $v) (i64.const 256))
      (then
        (i32.store8 (i32.const 16) (i32.const 0xcc))
        (call $be (i32.const 17) (local.get $v) (i32.const 1))
        (return (i32.const 2))))
    (if (i64.lt_u (local.get $v) (i64.const 65536))
      (then
        (i32.store8 (i32.const 16) (i32.const 0xcd))
        (call $be (i32.const 17) (local.get $v) (i32.const 2))
        (return (i32.const 3))))
    (if (i64.lt_u (local.get $v) (i64.const 4294967296))
      (then
        (i32.store8 (i32.const 16) (i32.const 0xce))
        (call $be (i32.const 17) (local.get $v) (i32.const 4))
        (return (i32.const 5))))
    (i32.store8 (i32.const 16) (i32.const 0xcf))
    (call $be (i32.const 17) (local.get $v) (i32.const 8))
    (i32.const 9))

  (func (export "handle") (param $len i32) (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    ;; (16 << 32) | encoded length
    (i64.or (i64.const 68719476736) (i64.extend_i32_u (call $pack (global.get $count)))))

  ;; State hand-over: the count as 8 bytes little-endian at 64 -> (64 << 32) | 8.
  (func (export "snapshot") (result i64)
    (i64.store (i32.const 64) (global.get $count))
    (i64.const 274877906952))

  ;; Take state written at inbox(len); refuse (1) anything that is not 8 bytes.
  (func (export "restore") (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (i32.const 1024)))
    (i32.const 0)))

/* Links the model file given by EMBER_DEMO_MODEL_PATH into .rodata, 64-byte aligned. */
  .section .rodata
  .balign 64
  .global ember_demo_model
ember_demo_model:
  .incbin EMBER_DEMO_MODEL_PATH
  .global ember_demo_model_end
ember_demo_model_end:
  .byte 0

"""Export a fitted rig for animation: FBX for game engines and DCC tools, binary glTF
(.glb) for web viewers. `presets` is the table of per-target settings (plain Python),
`exporter` does the work with bpy, `cli` is the `export` command. Importing this package
pulls in nothing heavy: the command line lists its help without bpy."""

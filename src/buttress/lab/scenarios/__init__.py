"""Built-in lab scenarios; each module defines one scenario class, registered in
``buttress.lab.registry``."""

"""Pure numba kernels. They validate nothing and allocate nothing they return: callers
(``fastbp.functional``) check shapes and dtypes and pass preallocated outputs."""

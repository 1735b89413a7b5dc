"""fusion-necks: multi-scale feature-fusion modules for MMDetection and MMSegmentation."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    ns: dict = {}
    with open(osp.join(osp.dirname(__file__), 'fusion_necks', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


setup(
    name='fusion-necks',
    version=read_version(),
    description='FINE, ASFF, BAFF-SkipNet and AutoFocusFormer as drop-in '
    'MMDetection / MMSegmentation modules',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['fusion_necks', 'fusion_necks.*']),
    include_package_data=True,
    # Only torch is a hard requirement: the modules are plain PyTorch. The
    # OpenMMLab stack is pinned and installed by tools/install.sh (mmcv must be
    # compiled against the local torch, which pip cannot express).
    install_requires=['torch>=1.13', 'numpy'],
    extras_require={
        'mm': ['mmengine==0.10.7', 'mmcv==2.1.0', 'mmdet==3.3.0',
               'mmsegmentation==1.2.2', 'ftfy', 'regex', 'pycocotools>=2.0.11',
               'cityscapesscripts'],
        'tests': ['pytest'],
    },
    zip_safe=False,
)
